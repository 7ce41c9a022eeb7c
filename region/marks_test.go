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

// An invalidation mark that the backend loses (its own eviction, a storage
// TTL) is stored again by a region that knows it, so a process that starts
// afterwards does not take invalidated values for valid ones.
func TestLostInvalidationMarkIsRepaired(t *testing.T) {
	ctx := context.Background()
	st := sharedStore{mu: new(sync.Mutex), m: map[string]backends.Entry{}}
	a := region.New()
	a.ConfigureBackend(st, region.WithInvalidationCheck(0))
	region.Set(ctx, a, "k", "v1")
	time.Sleep(time.Millisecond)
	if err := a.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	// The backend evicts the mark.
	st.mu.Lock()
	n := len(st.m)
	for k := range st.m {
		if len(k) > 0 && k[0] == 0 {
			delete(st.m, k)
		}
	}
	lost := n - len(st.m)
	st.mu.Unlock()
	if lost != 1 {
		t.Fatalf("%d marks in the store, want 1", lost)
	}
	// Region a still knows it, and its next look at the marks repairs them.
	if _, err := region.Get[string](ctx, a, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("region a serves a value it hard-invalidated: %v", err)
	}
	c := region.New()
	c.ConfigureBackend(st, region.WithInvalidationCheck(0))
	if v, err := region.Get[string](ctx, c, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("a region started after the mark was lost serves the invalidated value %q (%v)", v, err)
	}
}
