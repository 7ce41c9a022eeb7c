package region_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// engineAPIs are the engine's three entry points, each getting key "k"
// with a creator of one string value.
func engineAPIs(t *testing.T) []struct {
	name    string
	backend string
	get     func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error)
} {
	return []struct {
		name    string
		backend string
		get     func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error)
	}{
		{"GetOrCreate", "memory", func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
			return region.GetOrCreate(ctx, r, "k", create, opts...)
		}},
		{"GetOrCreateMulti", "memory", func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
			vs, err := region.GetOrCreateMulti(ctx, r, []string{"k"}, func(ctx context.Context, missing []string) ([]string, error) {
				v, err := create(ctx)
				return []string{v}, err
			}, opts...)
			if err != nil {
				return "", err
			}
			return vs[0], nil
		}},
		{"GetOrCreateFile", "rawfs", func(ctx context.Context, r *region.Region, create func(context.Context) (string, error), opts ...region.CallOption) (string, error) {
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
			b, err := io.ReadAll(f)
			return string(b), err
		}},
	}
}

// TestEarlyRefreshAndIgnoreExpirationOneEngine: EarlyRefresh and
// IgnoreExpiration mean the same in GetOrCreate, GetOrCreateMulti and
// GetOrCreateFile: a value chosen for early refresh is returned at once and
// regenerated in the background; IgnoreExpiration never makes a
// get-or-create return an invalidated value.
func TestEarlyRefreshAndIgnoreExpirationOneEngine(t *testing.T) {
	for _, a := range engineAPIs(t) {
		t.Run(a.name, func(t *testing.T) {
			clk := newClock()
			var args backends.Args
			if a.backend == "rawfs" {
				args = backends.Args{"base_dir": t.TempDir()}
			}
			r, err := region.Open(a.backend, args, region.WithClock(clk.now), region.WithExpiration(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			val := func(v string) func(context.Context) (string, error) {
				return func(context.Context) (string, error) { time.Sleep(time.Millisecond); return v, nil }
			}
			if v, err := a.get(ctx, r, val("v1")); err != nil || v != "v1" {
				t.Fatal(v, err)
			}
			clk.advance(nearExpiry)
			if v, err := a.get(ctx, r, val("v2"), region.EarlyRefresh(testBeta)); err != nil || v != "v1" {
				t.Fatalf("chosen for early refresh: %q, %v; want the fresh v1 at once", v, err)
			}
			waitFor(t, func() bool { v, _ := a.get(ctx, r, val("never")); return v == "v2" })
			if st := r.Stats(); st.StaleServed != 0 || st.Misses != 1 {
				t.Fatalf("stats %+v: one miss (the first call), no stale value", st)
			}

			clk.advance(time.Second)
			if err := r.Invalidate(ctx, region.Hard); err != nil {
				t.Fatal(err)
			}
			if v, err := a.get(ctx, r, val("v3"), region.IgnoreExpiration()); err != nil || v != "v3" {
				t.Fatalf("get-or-create with IgnoreExpiration after a hard invalidation: %q, %v", v, err)
			}
		})
	}
}
