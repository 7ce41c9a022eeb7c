package region_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/region"
)

// fakeClock is a settable clock for WithClock.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestGetMultiOrderMissesAndExpired(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now), region.WithExpiration(time.Minute))
	ctx := context.Background()
	if err := region.SetMulti(ctx, r, map[string]int{"old": 1}); err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Second)
	if err := region.SetMulti(ctx, r, map[string]int{"a": 10, "b": 20, "c": 30}); err != nil {
		t.Fatal(err)
	}
	clk.advance(20 * time.Second) // "old" is 70 s old: expired; the others 20 s
	keys := []string{"c", "missing", "old", "a", "b", "a"}
	vs, found, err := region.GetMulti[int](ctx, r, keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{30, 0, 0, 10, 20, 10}; !slices.Equal(vs, want) {
		t.Fatalf("values %v, want %v (input order)", vs, want)
	}
	if want := []bool{true, false, false, true, true, true}; !slices.Equal(found, want) {
		t.Fatalf("found %v, want %v", found, want)
	}
	// The expired value is there for IgnoreExpiration.
	vs, found, _ = region.GetMulti[int](ctx, r, []string{"old", "missing"}, region.IgnoreExpiration())
	if !found[0] || vs[0] != 1 || found[1] {
		t.Fatalf("IgnoreExpiration: %v %v", vs, found)
	}
	// Delete of several keys at once.
	if err := r.Delete(ctx, "a", "b", "nothing"); err != nil {
		t.Fatal(err)
	}
	_, found, _ = region.GetMulti[int](ctx, r, []string{"a", "b", "c"})
	if !slices.Equal(found, []bool{false, false, true}) {
		t.Fatalf("after Delete(a, b): found %v", found)
	}
}

func TestGetEntryAgeUnderWithClock(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now), region.WithExpiration(time.Hour), region.WithVersion(3))
	ctx := context.Background()
	created := clk.now()
	if err := region.Set(ctx, r, "k", "v", region.WithTags("t1", "t2")); err != nil {
		t.Fatal(err)
	}
	clk.advance(90 * time.Minute / 2) // 45 min
	e, err := region.GetEntry[string](ctx, r, "k")
	if err != nil {
		t.Fatal(err)
	}
	if e.Value != "v" || !e.Created.Equal(created) || e.Age != 45*time.Minute || e.Version != 3 ||
		!slices.Equal(e.Tags, []string{"t1", "t2"}) || e.Stale {
		t.Fatalf("GetEntry = %+v", e)
	}
	clk.advance(30 * time.Minute) // 75 min: expired, no sleeping involved
	if _, err := region.GetEntry[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("expired GetEntry: %v", err)
	}
	e, err = region.GetEntry[string](ctx, r, "k", region.IgnoreExpiration())
	if err != nil || !e.Stale || e.Age != 75*time.Minute {
		t.Fatalf("expired GetEntry with IgnoreExpiration = %+v, %v", e, err)
	}
	// GetOrCreate judges expiry with the same clock.
	v, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) { return "new", nil })
	if err != nil || v != "new" {
		t.Fatalf("GetOrCreate on a value expired by the clock: %q, %v", v, err)
	}
}

func TestIgnoreExpirationAfterHardInvalidation(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now))
	ctx := context.Background()
	region.Set(ctx, r, "k", "before")
	clk.advance(time.Second)
	if err := r.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("Get after hard invalidation: %v", err)
	}
	v, err := region.Get[string](ctx, r, "k", region.IgnoreExpiration())
	if err != nil || v != "before" {
		t.Fatalf("Get with IgnoreExpiration after hard invalidation: %q, %v", v, err)
	}
	e, err := region.GetEntry[string](ctx, r, "k", region.IgnoreExpiration())
	if err != nil || !e.Stale {
		t.Fatalf("GetEntry with IgnoreExpiration: %+v, %v (want Stale)", e, err)
	}
	// ExpireAfter(-1) skips expiration only: a hard invalidation still wins.
	if _, err := region.Get[string](ctx, r, "k", region.ExpireAfter(-1)); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("ExpireAfter(-1) after hard invalidation: %v", err)
	}
	// GetOrCreate ignores IgnoreExpiration: it regenerates.
	v, _ = region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) { return "after", nil }, region.IgnoreExpiration())
	if v != "after" {
		t.Fatalf("GetOrCreate with IgnoreExpiration returned %q", v)
	}
}

func TestExpireAfterFuncEvaluatedPerCall(t *testing.T) {
	clk := newClock()
	r := open(t, nil, region.WithClock(clk.now))
	ctx := context.Background()
	var exp atomic.Int64
	exp.Store(int64(time.Hour))
	asked := 0
	opt := region.ExpireAfterFunc(func() time.Duration { asked++; return time.Duration(exp.Load()) })
	n := 0
	create := func(context.Context) (int, error) { n++; return n, nil }
	get := func() int {
		t.Helper()
		v, err := region.GetOrCreate(ctx, r, "k", create, opt)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	get()
	clk.advance(10 * time.Minute)
	if v := get(); v != 1 {
		t.Fatalf("fresh by the first duration: %d", v)
	}
	exp.Store(int64(5 * time.Minute)) // the same option value, a new answer
	if v := get(); v != 2 {
		t.Fatalf("the function's new duration was not used: %d", v)
	}
	if asked != 3 {
		t.Fatalf("the function was asked %d times in 3 calls", asked)
	}
	// On a Loader too.
	l := region.Cached(r, "l", func(ctx context.Context, k int) (int, error) { n++; return n, nil }, opt)
	first, _ := l.Load(ctx, 1)
	clk.advance(time.Minute)
	if v, _ := l.Load(ctx, 1); v != first {
		t.Fatal("Loader: fresh value recreated")
	}
	exp.Store(int64(30 * time.Second))
	if v, _ := l.Load(ctx, 1); v == first {
		t.Fatal("Loader: ExpireAfterFunc not re-evaluated")
	}
}

// TestKeyIsLockedInProcess: true while a creator runs for the key, false
// before and after, also for a key that a mangler changes.
func TestKeyIsLockedInProcess(t *testing.T) {
	r := open(t, nil, region.WithKeyMangler(region.SHA256Mangler))
	ctx := context.Background()
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("before: %v %v", locked, err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) {
			close(started)
			<-release
			return "v", nil
		})
	}()
	<-started
	for _, k := range []string{"k", "other"} {
		locked, err := r.KeyIsLocked(ctx, k)
		if err != nil || locked != (k == "k") {
			t.Fatalf("during creation, KeyIsLocked(%q) = %v, %v", k, locked, err)
		}
	}
	close(release)
	<-done
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("after: %v %v", locked, err)
	}
	// KeyIsLocked took no lock that stays: a creation proceeds at once.
	v, err := region.GetOrCreate(ctx, r, "k2", func(context.Context) (string, error) { return "v2", nil })
	if err != nil || v != "v2" {
		t.Fatal(v, err)
	}
}
