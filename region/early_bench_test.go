package region_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/regioncache/regioncache/region"
)

// BenchmarkMemoryGetOrCreateHitEarlyRefresh is BenchmarkMemoryGetOrCreateHit
// on a region with an expiration and early refresh on (WithEarlyRefresh(1)),
// for a value far from expiry. Bar: within 1.2× of
// BenchmarkMemoryGetOrCreateHit in the same run, and 0 allocations
// (BenchmarkMemoryEarlyRefreshRatio measures the ratio interleaved).
func BenchmarkMemoryGetOrCreateHitEarlyRefresh(b *testing.B) {
	r, err := region.Open("memory", nil, region.WithExpiration(time.Hour), region.WithEarlyRefresh(1))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	create := func(context.Context) (string, error) { return "value", nil }
	if _, err := region.GetOrCreate(ctx, r, "key", create); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := region.GetOrCreate(ctx, r, "key", create)
		if err != nil || len(v) != 5 {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkMemoryEarlyRefreshRatio interleaves blocks of hits on three
// regions — early refresh on (expiration 1h, WithEarlyRefresh(1)), the same
// expiration without it, and neither (BenchmarkMemoryGetOrCreateHit's
// region) — and reports the median per-operation ratios "early/expiring"
// and "early/plain". Bar: early/plain ≤ 1.2.
func BenchmarkMemoryEarlyRefreshRatio(b *testing.B) {
	ctx := context.Background()
	create := func(context.Context) (string, error) { return "value", nil }
	open := func(opts ...region.Option) *region.Region {
		r, err := region.Open("memory", nil, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		region.GetOrCreate(ctx, r, "key", create)
		return r
	}
	early := open(region.WithExpiration(time.Hour), region.WithEarlyRefresh(1))
	expiring := open(region.WithExpiration(time.Hour))
	plain := open()
	const block = 2000
	var sink int
	run := func(r *region.Region) time.Duration {
		t0 := time.Now()
		for i := 0; i < block; i++ {
			v, _ := region.GetOrCreate(ctx, r, "key", create)
			sink += len(v)
		}
		return time.Since(t0)
	}
	var vsExp, vsPlain []float64
	b.ResetTimer()
	for done := 0; done < b.N; done += 3 * block {
		te, tx, tp := run(early), run(expiring), run(plain)
		vsExp = append(vsExp, float64(te)/float64(tx))
		vsPlain = append(vsPlain, float64(te)/float64(tp))
	}
	if sink == 0 {
		b.Fatal("no reads")
	}
	sort.Float64s(vsExp)
	sort.Float64s(vsPlain)
	b.ReportMetric(vsExp[len(vsExp)/2], "early/expiring")
	b.ReportMetric(vsPlain[len(vsPlain)/2], "early/plain")
}
