package region_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// tenantStrategy is a custom invalidation strategy: it keeps its marks in
// its own state (as dogpile users keep theirs in an application database)
// and records how the region uses it.
type tenantStrategy struct {
	mu         sync.Mutex
	hard, soft time.Time
	calls      []string
	fail       error
	asked      int
}

func (s *tenantStrategy) Invalidate(ctx context.Context, mode region.InvalidationMode, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if mode == region.Hard {
		s.hard = now
		s.calls = append(s.calls, "hard@"+now.Format(time.TimeOnly))
	} else {
		s.soft = now
		s.calls = append(s.calls, "soft@"+now.Format(time.TimeOnly))
	}
	return nil
}

func (s *tenantStrategy) Invalidated(ctx context.Context, created time.Time) (region.InvalidationMode, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	switch {
	case created.Before(s.hard):
		return region.Hard, true
	case created.Before(s.soft):
		return region.Soft, true
	}
	return 0, false
}

func TestCustomInvalidationStrategy(t *testing.T) {
	clk := newClock()
	st := &tenantStrategy{}
	r := open(t, nil, region.WithClock(clk.now), region.WithInvalidationStrategy(st))
	ctx := context.Background()
	n := 0
	create := func(context.Context) (int, error) { n++; return n, nil }
	get := func(opts ...region.CallOption) int {
		t.Helper()
		v, err := region.GetOrCreate(ctx, r, "k", create, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	get()
	clk.advance(time.Second)

	// Soft: the value is stale — not a Get hit, but GetOrCreate regenerates it
	// (and, with RegenerateInBackground, serves it meanwhile).
	if err := r.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	if _, err := region.Get[int](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("Get after a soft invalidation by the strategy: %v", err)
	}
	if e, err := region.GetEntry[int](ctx, r, "k", region.IgnoreExpiration()); err != nil || !e.Stale || e.Value != 1 {
		t.Fatalf("GetEntry with IgnoreExpiration: %+v, %v", e, err)
	}
	if v := get(region.RegenerateInBackground()); v != 1 {
		t.Fatalf("soft-invalidated value not served while regenerating: %d", v)
	}
	waitFor(t, func() bool { v, err := region.Get[int](ctx, r, "k"); return err == nil && v == 2 })
	clk.advance(time.Second)

	// Hard: the value is missing — regenerated before anyone gets it.
	if err := r.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	if v := get(region.RegenerateInBackground()); v != 3 {
		t.Fatalf("hard-invalidated value served: %d", v)
	}
	if v := get(); v != 3 {
		t.Fatalf("new value not fresh for the strategy: %d", v)
	}
	st.mu.Lock()
	calls, asked := st.calls, st.asked
	st.mu.Unlock()
	// The strategy is given the region's clock.
	if len(calls) != 2 || calls[0] != "soft@00:00:01" || calls[1] != "hard@00:00:02" {
		t.Fatalf("strategy saw %v", calls)
	}
	if asked == 0 {
		t.Fatal("the strategy was never asked")
	}

	// Its errors are the caller's, wrapped.
	boom := errors.New("tenant db down")
	st.mu.Lock()
	st.fail = boom
	st.mu.Unlock()
	if err := r.Invalidate(ctx, region.Hard); !errors.Is(err, boom) {
		t.Fatalf("Invalidate error %v, want the strategy's", err)
	}
	if err := r.Invalidate(ctx, region.InvalidationMode(7)); !errors.Is(err, region.ErrBadOption) {
		t.Fatalf("bad mode: %v", err)
	}
	if _, err := region.Open("memory", nil, region.WithInvalidationStrategy(nil)); !errors.Is(err, region.ErrBadOption) {
		t.Fatalf("nil strategy: %v", err)
	}
}

// TestBackendInvalidationElsewhere: the default strategy over a store of its
// own (here a filesystem directory, as a shared Redis would be) lets regions
// of private in-process memory backends invalidate each other.
func TestBackendInvalidationElsewhere(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var rs []*region.Region
	for range 2 {
		marks, err := backends.Open("filesystem", backends.Args{"base_dir": dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { marks.Close() })
		rs = append(rs, open(t, nil, region.WithInvalidationStrategy(region.BackendInvalidation(marks, 0))))
	}
	a, b := rs[0], rs[1]
	region.Set(ctx, a, "k", "a1")
	region.Set(ctx, b, "k", "b1")
	time.Sleep(time.Millisecond)
	if err := a.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*region.Region{"a": a, "b": b} {
		if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
			t.Fatalf("region %s serves a value invalidated through the shared marks: %v", name, err)
		}
	}
	region.Set(ctx, b, "k", "b2")
	if v, err := region.Get[string](ctx, b, "k"); err != nil || v != "b2" {
		t.Fatalf("a value written after the invalidation: %q, %v", v, err)
	}
}
