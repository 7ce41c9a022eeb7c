package region_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/null"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

// Close must refuse new work and wait for background work in flight; no
// creator may run after Close returned.
func TestCloseWaitsForBackgroundWorkAndRefusesNew(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	r, err := region.Open("memory", nil, region.WithExpiration(time.Second),
		region.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	region.Set(ctx, r, "k", "old")
	clock.Add(int64(2 * time.Second))
	started := make(chan struct{})
	var closed atomic.Bool
	var ranAfterClose atomic.Bool
	v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
		close(started)
		time.Sleep(50 * time.Millisecond)
		if closed.Load() {
			ranAfterClose.Store(true)
		}
		return "new", nil
	}, region.RegenerateInBackground())
	if err != nil || v != "old" {
		t.Fatalf("got %q, %v; want the stale value at once", v, err)
	}
	<-started
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	if ranAfterClose.Load() {
		t.Fatal("a background creator was still running after Close returned")
	}
	if _, err := region.GetOrCreate(ctx, r, "x", func(context.Context) (string, error) { return "x", nil }); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("GetOrCreate after Close: %v, want ErrClosed", err)
	}
}

// Close cancels a background creator's context, so a creator that honours
// it cannot block Close forever.
func TestCloseCancelsHungBackgroundCreator(t *testing.T) {
	ctx := context.Background()
	r, _ := region.Open("memory", nil)
	region.Set(ctx, r, "k", "old")
	started := make(chan struct{})
	region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	}, region.RegenerateInBackground(), region.ExpireAfter(0))
	<-started
	done := make(chan error)
	go func() { done <- r.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a background creator")
	}
}

// ctxLock is a lock that is released when the context it was taken with
// ends (as a plugin's lock is).
type ctxLock struct{ k lock.Keyed }

func (l *ctxLock) Lock(ctx context.Context, key string) (lock.Handle, error) {
	h, err := l.k.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return l.bind(ctx, h), nil
}

func (l *ctxLock) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	h, ok, err := l.k.TryLock(ctx, key)
	if !ok || err != nil {
		return nil, ok, err
	}
	return l.bind(ctx, h), true, nil
}

func (l *ctxLock) bind(ctx context.Context, h lock.Handle) lock.Handle {
	var once sync.Once
	release := func() error {
		err := lock.ErrReleased
		once.Do(func() { err = h.Unlock() })
		return err
	}
	context.AfterFunc(ctx, func() { release() })
	return handleFunc(release)
}

type handleFunc func() error

func (f handleFunc) Unlock() error { return f() }

// Background regeneration must hold its lock with a context that outlives
// the caller: with a context-bound lock, two background creators of one key
// ran at once.
func TestBackgroundLockOutlivesCaller(t *testing.T) {
	r, _ := region.Open("memory", nil, region.WithLocker(&ctxLock{}))
	defer r.Close()
	region.Set(context.Background(), r, "k", "old")
	var running, most atomic.Int32
	release := make(chan struct{})
	create := func(ctx context.Context) (string, error) {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return "new", nil
	}
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		v, err := region.GetOrCreate(ctx, r, "k", create, region.RegenerateInBackground(), region.ExpireAfter(0))
		cancel() // the caller is gone; its lock must not be
		if err != nil {
			t.Fatal(err)
		}
		_ = v
		time.Sleep(time.Millisecond)
	}
	close(release)
	r.Close()
	if most.Load() != 1 {
		t.Fatalf("%d background creators ran at once for one key, want 1", most.Load())
	}
}

// Two keys that a mangler maps to one backend key are one key: no deadlock.
func TestMultiMangledCollision(t *testing.T) {
	r, _ := region.Open("memory", nil, region.WithKeyMangler(strings.ToLower))
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var calls [][]string
	vs, err := region.GetOrCreateMulti(ctx, r, []string{"A", "a", "b"}, func(ctx context.Context, missing []string) ([]string, error) {
		calls = append(calls, missing)
		out := make([]string, len(missing))
		for i, k := range missing {
			out[i] = "v" + strings.ToLower(k)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0] != "va" || vs[1] != "va" || vs[2] != "vb" {
		t.Fatalf("values %q", vs)
	}
	if len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("creator calls %q, want one with two keys", calls)
	}
}

// ExpireAfter(0) re-creates on every call; a negative duration never expires.
func TestExpireAfterZeroAlwaysRecreates(t *testing.T) {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	ctx := context.Background()
	var n atomic.Int32
	create := func(context.Context) (int32, error) { return n.Add(1), nil }
	for i := 1; i <= 3; i++ {
		v, err := region.GetOrCreate(ctx, r, "k", create, region.ExpireAfter(0))
		if err != nil || v != int32(i) {
			t.Fatalf("call %d: %v, %v; want a new value each call", i, v, err)
		}
	}
	v, _ := region.GetOrCreate(ctx, r, "k", create, region.ExpireAfter(-1))
	if v != 3 {
		t.Fatalf("ExpireAfter(-1) re-created: %v", v)
	}
}

// A disabled cache must not serialise its callers.
func TestNullBackendDoesNotSerialise(t *testing.T) {
	r, _ := region.Open("null", nil)
	defer r.Close()
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			region.GetOrCreate(context.Background(), r, "k", func(context.Context) (int, error) {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(100 * time.Millisecond)
				running.Add(-1)
				return 1, nil
			})
		}()
	}
	wg.Wait()
	if most.Load() != 3 {
		t.Fatalf("at most %d creators ran at once on the null backend, want 3", most.Load())
	}
}

// 100 waiters of a failing creator share its error: the creator runs once.
func TestFailingCreatorErrorIsShared(t *testing.T) {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	boom := errors.New("boom")
	var runs atomic.Int32
	release := make(chan struct{})
	const callers = 100
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		go func() {
			_, err := region.GetOrCreate(context.Background(), r, "k", func(context.Context) (int, error) {
				runs.Add(1)
				<-release
				return 0, boom
			})
			errs <- err
		}()
	}
	waitFor(t, func() bool { return r.Stats().LockWaits == callers-1 })
	close(release)
	var shared, own int
	for i := 0; i < callers; i++ {
		err := <-errs
		if !errors.Is(err, boom) {
			t.Fatalf("error %v does not wrap the creator's", err)
		}
		if errors.Is(err, region.ErrCreatorFailed) {
			shared++
		} else {
			own++
		}
	}
	if runs.Load() != 1 || own != 1 || shared != callers-1 {
		t.Fatalf("creator runs %d, own errors %d, shared %d", runs.Load(), own, shared)
	}
	// The lock is free and nothing was cached: the next call creates.
	v, err := region.GetOrCreate(context.Background(), r, "k", func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("after the failure: %v, %v", v, err)
	}
}

// Asking for another Go type is ErrTypeMismatch from Get, and GetOrCreate
// replaces the value with a Warn log.
func TestTypeMismatch(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	r, _ := region.Open("memory", nil, region.WithLogger(logger))
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "k", 42)
	if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrTypeMismatch) {
		t.Fatalf("Get of another type: %v", err)
	}
	if _, err := region.GetEntry[string](ctx, r, "k"); !errors.Is(err, region.ErrTypeMismatch) {
		t.Fatalf("GetEntry of another type: %v", err)
	}
	v, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) { return "s", nil })
	if err != nil || v != "s" {
		t.Fatal(v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "another Go type") {
		t.Fatalf("no warning when replacing: %q", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Stats of a 50-caller stampede count each call once; events carry the
// context, the region name and durations.
func TestStampedeStatsAndEvents(t *testing.T) {
	type ctxKey struct{}
	var mu sync.Mutex
	var created []region.Event
	var waits int
	r, _ := region.Open("memory", nil, region.WithName("users"), region.WithObserver(func(e region.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Region != "users" || e.Context == nil || e.Context.Value(ctxKey{}) != "trace" {
			t.Errorf("event without region or context: %+v", e)
		}
		switch e.Kind {
		case region.EventCreated:
			created = append(created, e)
		case region.EventLockWait:
			waits++
		}
	}))
	defer r.Close()
	ctx := context.WithValue(context.Background(), ctxKey{}, "trace")
	release := make(chan struct{})
	var wg sync.WaitGroup
	const callers = 50
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) {
				<-release
				time.Sleep(10 * time.Millisecond)
				return "v", nil
			})
		}()
	}
	waitFor(t, func() bool { return r.Stats().LockWaits == callers-1 })
	close(release)
	wg.Wait()
	st := r.Stats()
	want := region.Stats{Calls: callers, Misses: callers, Creations: 1, LockWaits: callers - 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(created) != 1 || created[0].Duration < 10*time.Millisecond {
		t.Fatalf("created events %+v, want one with the creator's run time", created)
	}
	if waits != callers-1 {
		t.Fatalf("lock-wait events %d", waits)
	}
}

// sharedStore is a third-party store with no declarations at all: two
// instances over one map (as two processes over one server).
type sharedStore struct {
	mu *sync.Mutex
	m  map[string]backends.Entry
}

func (s sharedStore) Get(ctx context.Context, k string) (backends.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return e, backends.ErrNotFound
	}
	return e, nil
}
func (s sharedStore) Set(ctx context.Context, k string, e backends.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = e
	return nil
}
func (s sharedStore) Delete(ctx context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}
func (s sharedStore) Close() error { return nil }

// A store that declares nothing is assumed shared: another region's hard
// invalidation is honoured.
func TestUndeclaredStoreIsShared(t *testing.T) {
	ctx := context.Background()
	st := sharedStore{mu: new(sync.Mutex), m: map[string]backends.Entry{}}
	a, b := region.New(), region.New()
	a.ConfigureBackend(st, region.WithInvalidationCheck(0))
	b.ConfigureBackend(st, region.WithInvalidationCheck(0))
	region.Set(ctx, a, "k", "v1")
	if v, err := region.Get[string](ctx, b, "k"); err != nil || v != "v1" {
		t.Fatal(v, err)
	}
	time.Sleep(time.Millisecond)
	if err := a.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	if _, err := region.Get[string](ctx, b, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("region b still serves a value region a hard-invalidated: %v", err)
	}
}

// A proxy embedding backends.Proxy keeps every optional interface of what it
// wraps: over memory it keeps values unencoded and stays process-local, and
// its multi ops and tags pass through.
func TestProxyKeepsOptionalInterfaces(t *testing.T) {
	var gets atomic.Int32
	wrap := func(next backends.Backend) (backends.Backend, error) {
		return &countingProxy{Proxy: backends.Proxy{Next: next}, gets: &gets}, nil
	}
	r, err := region.Open("memory", nil, region.WithWrap(wrap))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "k", []int{1}, region.WithTags("t"))
	if _, ok := r.Backend().(backends.TagEvicter); !ok {
		t.Fatal("proxy lost TagEvicter")
	}
	if !backends.KeepsValues(r.Backend()) || backends.IsShared(r.Backend()) {
		t.Fatal("proxy over memory lost its declarations")
	}
	if n, err := r.EvictTag(ctx, "t"); err != nil || n != 1 {
		t.Fatalf("EvictTag through the proxy: %d, %v", n, err)
	}
	region.GetOrCreate(ctx, r, "k2", func(context.Context) (int, error) { return 1, nil })
	if gets.Load() == 0 {
		t.Fatal("the proxy's own Get was not used")
	}
}

type countingProxy struct {
	backends.Proxy
	gets *atomic.Int32
}

func (p *countingProxy) Get(ctx context.Context, k string) (backends.Entry, error) {
	p.gets.Add(1)
	return p.Proxy.Get(ctx, k)
}

// The three entry points run one engine: the same table of semantics holds
// for GetOrCreate, GetOrCreateMulti and GetOrCreateFile.
func TestOneEngineSemantics(t *testing.T) {
	type api struct {
		name string
		open func(t *testing.T) *region.Region
		// get runs a get-or-create of key "k" whose creator returns val or err.
		get func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error)
	}
	openMem := func(t *testing.T) *region.Region {
		r, err := region.Open("memory", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	apis := []api{
		{"GetOrCreate", openMem, func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
			return region.GetOrCreate(ctx, r, "k", create, opts...)
		}},
		{"GetOrCreateMulti", openMem, func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
			vs, err := region.GetOrCreateMulti(ctx, r, []string{"k"}, func(ctx context.Context, missing []string) ([]string, error) {
				v, err := create(ctx)
				if err != nil {
					return nil, err
				}
				return []string{v}, nil
			}, opts...)
			if err != nil {
				return "", err
			}
			return vs[0], nil
		}},
		{"GetOrCreateFile", fileRegion, func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
			f, err := region.GetOrCreateFile(ctx, r, "k", func(ctx context.Context) (*os.File, error) {
				v, err := create(ctx)
				if err != nil {
					return nil, err
				}
				f, err := os.CreateTemp(t.TempDir(), "v")
				if err != nil {
					return nil, err
				}
				f.WriteString(v)
				return f, nil
			}, opts...)
			if err != nil {
				return "", err
			}
			defer f.Close()
			b, err := readAll(f)
			return string(b), err
		}},
	}
	boom := errors.New("boom")
	for _, a := range apis {
		t.Run(a.name, func(t *testing.T) {
			ctx := context.Background()
			val := func(v string) func(context.Context) (string, error) {
				return func(context.Context) (string, error) { return v, nil }
			}
			t.Run("cold", func(t *testing.T) {
				r := a.open(t)
				if v, err := a.get(ctx, r, val("v1")); err != nil || v != "v1" {
					t.Fatal(v, err)
				}
				if v, err := a.get(ctx, r, val("v2")); err != nil || v != "v1" {
					t.Fatalf("hit: %q, %v", v, err)
				}
			})
			t.Run("stale-served-while-locked", func(t *testing.T) {
				r := a.open(t)
				a.get(ctx, r, val("old"))
				started, release := make(chan struct{}), make(chan struct{})
				done := make(chan string)
				go func() {
					v, _ := a.get(ctx, r, func(context.Context) (string, error) { close(started); <-release; return "new", nil }, region.ExpireAfter(0))
					done <- v
				}()
				<-started
				if v, err := a.get(ctx, r, val("other"), region.ExpireAfter(0)); err != nil || v != "old" {
					t.Fatalf("while another regenerates: %q, %v; want the stale value", v, err)
				}
				close(release)
				if v := <-done; v != "new" {
					t.Fatalf("regenerating caller got %q", v)
				}
			})
			t.Run("wait-for-fresh", func(t *testing.T) {
				r := a.open(t)
				a.get(ctx, r, val("old"))
				started, release := make(chan struct{}), make(chan struct{})
				go a.get(ctx, r, func(context.Context) (string, error) { close(started); <-release; return "new", nil }, region.ExpireAfter(0))
				<-started
				go func() { time.Sleep(20 * time.Millisecond); close(release) }()
				if v, err := a.get(ctx, r, val("mine"), region.ExpireAfter(0), region.WaitForFresh()); err != nil || v != "new" {
					t.Fatalf("WaitForFresh: %q, %v", v, err)
				}
			})
			t.Run("background", func(t *testing.T) {
				r := a.open(t)
				a.get(ctx, r, val("old"))
				ran := make(chan struct{})
				v, err := a.get(ctx, r, func(context.Context) (string, error) { close(ran); return "new", nil }, region.ExpireAfter(0), region.RegenerateInBackground())
				if err != nil || v != "old" {
					t.Fatalf("background: %q, %v; want the stale value at once", v, err)
				}
				select {
				case <-ran:
				case <-time.After(5 * time.Second):
					t.Fatal("background creator never ran")
				}
			})
			t.Run("creator-error", func(t *testing.T) {
				r := a.open(t)
				if _, err := a.get(ctx, r, func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
					t.Fatalf("error %v", err)
				}
				if v, err := a.get(ctx, r, val("v")); err != nil || v != "v" {
					t.Fatalf("after an error: %q, %v", v, err)
				}
			})
			t.Run("panic", func(t *testing.T) {
				r := a.open(t)
				func() {
					defer func() {
						if recover() == nil {
							t.Fatal("no re-panic")
						}
					}()
					a.get(ctx, r, func(context.Context) (string, error) { panic("p") })
				}()
				if locked, _ := r.KeyIsLocked(ctx, "k"); locked {
					t.Fatal("lock held after a panic")
				}
				if v, err := a.get(ctx, r, val("v")); err != nil || v != "v" {
					t.Fatalf("after a panic: %q, %v", v, err)
				}
			})
			t.Run("cancellation", func(t *testing.T) {
				r := a.open(t)
				started, release := make(chan struct{}), make(chan struct{})
				go a.get(ctx, r, func(context.Context) (string, error) { close(started); <-release; return "v", nil })
				<-started
				cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
				if _, err := a.get(cctx, r, val("x")); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("waiting with an ended context: %v", err)
				}
				close(release)
			})
			t.Run("should-cache", func(t *testing.T) {
				r := a.open(t)
				no := []region.CallOption{region.CacheIf(func(string) bool { return false }), region.CacheIf(func(*os.File) bool { return false })}
				if v, err := a.get(ctx, r, val("v1"), no...); err != nil || v != "v1" {
					t.Fatal(v, err)
				}
				if v, err := a.get(ctx, r, val("v2")); err != nil || v != "v2" {
					t.Fatalf("CacheIf false still cached: %q, %v", v, err)
				}
			})
		})
	}
}

func fileRegion(t *testing.T) *region.Region {
	r, err := region.Open("rawfs", backends.Args{"base_dir": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func readAll(f *os.File) ([]byte, error) { return io.ReadAll(f) }
