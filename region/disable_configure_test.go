package region_test

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
)

// REGIONCACHE_DISABLED turns a region configured by name, or by a backend
// value, into pass-through: every call runs its creator.
func TestDisableEnvThroughConfigure(t *testing.T) {
	ctx := context.Background()
	t.Setenv(region.DisableEnv, "1")
	r, err := region.Open("memory", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r2 := region.New()
	if err := r2.ConfigureBackend(memory.New()); err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, r := range []*region.Region{r, r2} {
		n := 0
		for range 3 {
			if _, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (int, error) { n++; return n, nil }); err != nil {
				t.Fatal(err)
			}
		}
		if n != 3 {
			t.Errorf("disabled region ran its creator %d times for 3 calls, want 3", n)
		}
	}
}

// A namespace listed as region/namespace is pass-through for that region's
// loaders only.
func TestDisableEnvNamespace(t *testing.T) {
	ctx := context.Background()
	t.Setenv(region.DisableEnv, "users/profile")
	r, err := region.Open("memory", nil, region.WithName("users"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls := map[string]int{}
	for _, ns := range []string{"profile", "avatar"} {
		l := region.Cached(r, ns, func(ctx context.Context, id int) (int, error) { calls[ns]++; return id, nil })
		m := region.CachedMulti(r, ns+"-multi", func(ctx context.Context, ids []int) (map[int]int, error) {
			calls[ns+"-multi"]++
			out := map[int]int{}
			for _, id := range ids {
				out[id] = id
			}
			return out, nil
		})
		for range 3 {
			if v, err := l.Load(ctx, 7); err != nil || v != 7 {
				t.Fatal(v, err)
			}
			if _, err := m.Load(ctx, []int{1, 2}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if calls["profile"] != 3 || calls["avatar"] != 1 || calls["avatar-multi"] != 1 {
		t.Errorf("loader calls %v; want profile 3 (disabled), avatar 1, avatar-multi 1", calls)
	}
}
