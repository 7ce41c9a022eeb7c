package prometheus_test

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	rcprom "github.com/regioncache/regioncache/contrib/prometheus"
	"github.com/regioncache/regioncache/region"
)

// BenchmarkHit measures what the observer adds to a memory hit: the
// "floor" sub-benchmark is the same hit on a region without an observer,
// in the same run.
func BenchmarkHit(b *testing.B) {
	ctx := context.Background()
	load := func(ctx context.Context) (string, error) { return "v", nil }
	for _, c := range []struct {
		name string
		opts []region.Option
	}{
		{"floor", nil},
		{"observed", []region.Option{region.WithObserver(rcprom.New().Observe)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, err := region.Open("memory", backends.Args{}, c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			region.GetOrCreate(ctx, r, "k", load)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				region.GetOrCreate(ctx, r, "k", load)
			}
		})
	}
}
