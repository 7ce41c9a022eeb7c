package region_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/region"
)

// Early refresh choices in these tests are certain in practice: creators
// run about 1 ms (up to some 20 ms on a loaded machine) and beta is 100, so
// the chance of being chosen, exp(−left/(delta·beta)), is below e⁻²⁹ for a
// value 58 s or more from expiry and above 1 − 10⁻⁵ for one 1 µs from it.
const (
	testBeta   = 100
	nearExpiry = time.Minute - time.Microsecond // an age, with expiration 1 min
)

// blockingCreator counts runs and, once armed, blocks each run until
// released, so that a test can see callers return while it runs.
type blockingCreator struct {
	n       atomic.Int64
	armed   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func newBlockingCreator() *blockingCreator {
	return &blockingCreator{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (c *blockingCreator) create(ctx context.Context) (int64, error) {
	time.Sleep(time.Millisecond) // the measured run time, XFetch's delta
	n := c.n.Add(1)
	if c.armed.Load() {
		c.started <- struct{}{}
		select {
		case <-c.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return n, nil
}

// TestEarlyRefreshServesFreshAndRegeneratesInBackground: near expiry, the
// caller chosen for early refresh gets the fresh value at once, counted as a
// hit, while the creator runs in the background under the key's lock; other
// callers meanwhile get the same fresh value without waiting; then the new
// value is served. Far from expiry nothing is regenerated.
func TestEarlyRefreshServesFreshAndRegeneratesInBackground(t *testing.T) {
	for _, tc := range []struct {
		name   string
		region []region.Option
		call   []region.CallOption
	}{
		{"call option", nil, []region.CallOption{region.EarlyRefresh(testBeta)}},
		{"region option", []region.Option{region.WithEarlyRefresh(testBeta)}, nil},
		{"with WaitForFresh", nil, []region.CallOption{region.EarlyRefresh(testBeta), region.WaitForFresh()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			r := open(t, nil, append([]region.Option{region.WithClock(clk.now), region.WithExpiration(time.Minute)}, tc.region...)...)
			ctx := context.Background()
			c := newBlockingCreator()
			get := func() int64 {
				t.Helper()
				v, err := region.GetOrCreate(ctx, r, "k", c.create, tc.call...)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			get() // first creation
			for range 1000 {
				clk.advance(time.Millisecond) // up to 1 s of a minute: far from expiry
				if v := get(); v != 1 {
					t.Fatalf("far from expiry: value %d", v)
				}
			}
			if n := c.n.Load(); n != 1 {
				t.Fatalf("%d creations far from expiry, want 1", n)
			}
			before := r.Stats()
			clk.advance(nearExpiry - time.Second) // 1 µs before expiry: chosen
			c.armed.Store(true)
			if v := get(); v != 1 {
				t.Fatalf("chosen caller got %d, want the fresh value 1 at once", v)
			}
			<-c.started // the regeneration runs, in the background
			if locked, _ := r.KeyIsLocked(ctx, "k"); !locked {
				t.Fatal("background regeneration does not hold the key's lock")
			}
			for range 50 {
				if v := get(); v != 1 {
					t.Fatalf("caller during the regeneration got %d", v)
				}
			}
			if d := r.Stats().Hits - before.Hits; d != 51 {
				t.Fatalf("%d hits for the 51 calls near expiry", d)
			}
			close(c.release)
			waitFor(t, func() bool { v, err := region.Get[int64](ctx, r, "k"); return err == nil && v == 2 })
			if v := get(); v != 2 {
				t.Fatalf("after the regeneration: %d", v)
			}
			if n := c.n.Load(); n != 2 {
				t.Fatalf("%d creations, want 2 (exactly one early regeneration)", n)
			}
			st := r.Stats()
			if st.StaleServed != before.StaleServed || st.Misses != before.Misses || st.LockWaits != before.LockWaits {
				t.Fatalf("stats went from %+v to %+v: every call near expiry should be a hit, none waiting", before, st)
			}
		})
	}
}

// TestEarlyRefreshOffAndReads: EarlyRefresh(0) turns a region's default off
// for a call; reads never regenerate and never miss because of it.
func TestEarlyRefreshOffAndReads(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now), region.WithExpiration(time.Minute), region.WithEarlyRefresh(testBeta))
	ctx := context.Background()
	n := 0
	create := func(context.Context) (int, error) { time.Sleep(time.Millisecond); n++; return n, nil }
	region.GetOrCreate(ctx, r, "k", create, region.EarlyRefresh(0))
	clk.advance(nearExpiry)
	for range 100 {
		if v, _ := region.GetOrCreate(ctx, r, "k", create, region.EarlyRefresh(0)); v != 1 {
			t.Fatalf("EarlyRefresh(0) regenerated: %d", v)
		}
		if v, err := region.Get[int](ctx, r, "k", region.EarlyRefresh(testBeta)); err != nil || v != 1 {
			t.Fatalf("Get near expiry with early refresh: %d, %v", v, err)
		}
		if e, err := region.GetEntry[int](ctx, r, "k", region.IgnoreExpiration()); err != nil || e.Stale {
			t.Fatalf("GetEntry near expiry: %+v, %v", e, err)
		}
	}
	if _, err := region.Open("memory", nil, region.WithEarlyRefresh(-1)); !errors.Is(err, region.ErrBadOption) {
		t.Fatalf("WithEarlyRefresh(-1): %v", err)
	}
}

// TestEarlyRefreshMultiAndLoader: the option means the same through
// GetOrCreateMulti and a Loader (one engine): the fresh values are returned
// and only the keys chosen are regenerated, in the background.
func TestEarlyRefreshMultiAndLoader(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now), region.WithExpiration(time.Minute))
	ctx := context.Background()
	var mu sync.Mutex
	gen := map[string]int{}
	create := func(ctx context.Context, keys []string) ([]int, error) {
		mu.Lock()
		defer mu.Unlock()
		time.Sleep(time.Millisecond)
		out := make([]int, len(keys))
		for i, k := range keys {
			gen[k]++
			out[i] = gen[k]
		}
		return out, nil
	}
	region.GetOrCreateMulti(ctx, r, []string{"near"}, create)
	clk.advance(nearExpiry)
	region.GetOrCreateMulti(ctx, r, []string{"far"}, create)
	vs, err := region.GetOrCreateMulti(ctx, r, []string{"near", "far"}, create, region.EarlyRefresh(testBeta))
	if err != nil || vs[0] != 1 || vs[1] != 1 {
		t.Fatalf("multi with early refresh: %v, %v (want the fresh values at once)", vs, err)
	}
	waitFor(t, func() bool { v, _ := region.Get[int](ctx, r, "near"); return v == 2 })
	mu.Lock()
	if gen["far"] != 1 {
		t.Errorf("far key regenerated %d times", gen["far"]-1)
	}
	mu.Unlock()

	calls := atomic.Int64{}
	l := region.Cached(r, "l", func(ctx context.Context, k int) (int64, error) {
		time.Sleep(time.Millisecond)
		return calls.Add(1), nil
	}, region.EarlyRefresh(testBeta))
	l.Load(ctx, 1)
	clk.advance(nearExpiry)
	if v, _ := l.Load(ctx, 1); v != 1 {
		t.Fatalf("Loader near expiry: %d", v)
	}
	waitFor(t, func() bool { v, _ := l.Get(ctx, 1); return v == 2 })
}

// TestEarlyRefreshCloseDuringRegeneration: Close waits for an early
// regeneration in flight, cancelling its context.
func TestEarlyRefreshCloseDuringRegeneration(t *testing.T) {
	clk := newClock()
	r, err := region.Open("memory", nil, region.WithClock(clk.now), region.WithExpiration(time.Minute), region.WithEarlyRefresh(testBeta))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := newBlockingCreator()
	region.GetOrCreate(ctx, r, "k", c.create)
	clk.advance(nearExpiry)
	c.armed.Store(true)
	if v, _ := region.GetOrCreate(ctx, r, "k", c.create); v != 1 {
		t.Fatalf("got %d", v)
	}
	<-c.started
	if err := r.Close(); err != nil { // returns only once the creator saw its context end
		t.Fatal(err)
	}
	if _, err := region.GetOrCreate(ctx, r, "k", c.create); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestEarlyRefreshHotKey is the must-show: a 100 ms creator, a 1 s
// expiration and 200 callers a second for 5 s on one key. After the first
// creation no caller waits for a creator or is served a value older than the
// expiration; creations stay close to the minimum (5 s / (1 s − 100 ms)).
// The count is logged (go test -v -run TestEarlyRefreshHotKey ./region/).
func TestEarlyRefreshHotKey(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 5 s")
	}
	const (
		exp      = time.Second
		creator  = 100 * time.Millisecond
		rate     = 200
		duration = 5 * time.Second
		// With beta 1 a cycle leaves the refresh later than 0.9 s (too late
		// for a 100 ms creator) with probability e^(−200·0.1·e^(−1)) ≈ 6e-4;
		// with 1.25, e^(−200·0.125·e^(−0.8)) ≈ 1e-5, for about one creation
		// more in 5 s.
		beta = 1.25
	)
	r := open(t, nil, region.WithExpiration(exp))
	ctx := context.Background()
	var creations atomic.Int64
	type stamped struct{ Created time.Time }
	create := func(ctx context.Context) (stamped, error) {
		time.Sleep(creator)
		creations.Add(1)
		return stamped{time.Now()}, nil
	}
	if _, err := region.GetOrCreate(ctx, r, "hot", create, region.EarlyRefresh(beta)); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()
	var wg sync.WaitGroup
	var calls, old, errs atomic.Int64
	var maxAge, maxLatency atomic.Int64
	setMax := func(m *atomic.Int64, v int64) {
		for {
			o := m.Load()
			if v <= o || m.CompareAndSwap(o, v) {
				return
			}
		}
	}
	call := func() {
		defer wg.Done()
		start := time.Now()
		v, err := region.GetOrCreate(ctx, r, "hot", create, region.EarlyRefresh(beta))
		done := time.Now()
		calls.Add(1)
		if err != nil {
			errs.Add(1)
			return
		}
		// The value's age when it was handed over, against the wall clock
		// (the region's clock too).
		age := done.Sub(v.Created)
		setMax(&maxAge, int64(age))
		setMax(&maxLatency, int64(done.Sub(start)))
		if age > exp {
			old.Add(1)
		}
	}
	tick := time.NewTicker(time.Second / rate)
	begin := time.Now()
	launched := 0
	for now := range tick.C {
		if now.Sub(begin) > duration {
			break
		}
		// Ticks that a loaded machine drops are made up for: 200 calls a
		// second, started 5 ms apart or closer.
		for ; launched < int(now.Sub(begin)*rate/time.Second); launched++ {
			wg.Add(1)
			go call()
		}
	}
	tick.Stop()
	wg.Wait()
	time.Sleep(2 * creator) // let a last background regeneration finish
	st := r.Stats()
	t.Logf("%d calls in %v; %d creations after the first (minimum about %d); max value age %v; max call latency %v; stats %+v",
		calls.Load(), duration, creations.Load()-1, int(duration/(exp-creator)), time.Duration(maxAge.Load()), time.Duration(maxLatency.Load()), st)
	if errs.Load() != 0 {
		t.Fatalf("%d errors", errs.Load())
	}
	if d := st.StaleServed - before.StaleServed; d != 0 || old.Load() != 0 {
		t.Errorf("%d stale values served (%d older than %v)", d, old.Load(), exp)
	}
	if d := st.Misses - before.Misses; d != 0 {
		t.Errorf("%d misses: callers waited for a creator", d)
	}
	if d := st.LockWaits - before.LockWaits; d != 0 {
		t.Errorf("%d lock waits", d)
	}
	if d := st.Hits - before.Hits; d != calls.Load() {
		t.Errorf("%d hits for %d calls", d, calls.Load())
	}
	if n := creations.Load() - 1; n < int64(duration/exp) || n > 3*int64(duration/(exp-creator)) {
		t.Errorf("%d creations after the first: not close to the minimum %d", n, int(duration/(exp-creator)))
	}
}
