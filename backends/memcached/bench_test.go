package memcached_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/benchtest"
	"github.com/regioncache/regioncache/internal/memcachedtest"
	"github.com/regioncache/regioncache/region"
)

// Run pinned, client and server on one CPU (docs/benchmarks.md,
// "Memcached"):
//
//	taskset -c 0 go test -run '^$' -bench . -benchmem ./backends/memcached/

var benchValue = bytes.Repeat([]byte("0123456789"), 10) // 100 bytes

func benchSetup(b *testing.B) (*region.Region, *memcache.Client, func(), func()) {
	srv := memcachedtest.Start(b)
	r, err := region.Open("memcached", backends.Args{"url": srv.Addr(), "prefix": "bench"}, region.WithExpiration(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	ctx := context.Background()
	want := string(benchValue)
	if err := region.Set(ctx, r, "k", want); err != nil {
		b.Fatal(err)
	}
	c := memcache.New(srv.Addr())
	c.MaxIdleConns = 8
	if err := c.Set(&memcache.Item{Key: "raw", Value: benchValue}); err != nil {
		b.Fatal(err)
	}
	create := func(context.Context) (string, error) { return "", errors.New("creator ran on a hit") }
	hit := func() {
		v, err := region.GetOrCreate(ctx, r, "k", create)
		if err != nil || len(v) != len(want) {
			b.Fatalf("hit: %q, %v", v, err)
		}
	}
	get := func() {
		it, err := c.Get("raw")
		if err != nil || len(it.Value) != len(benchValue) {
			b.Fatalf("get: %v", err)
		}
	}
	hit()
	get()
	return r, c, hit, get
}

// BenchmarkMemcachedHit is a region GetOrCreate hit of a 100-byte string on
// the memcached backend: one get round trip.
func BenchmarkMemcachedHit(b *testing.B) {
	_, _, hit, _ := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		hit()
	}
}

// BenchmarkGomemcacheGet is the baseline of BenchmarkMemcachedHit: a bare
// gomemcache Get of the same 100 bytes from the same server.
func BenchmarkGomemcacheGet(b *testing.B) {
	_, _, _, get := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
}

// BenchmarkMemcachedHitRatio alternates blocks of region hits and bare Gets
// (swapping which goes first) and reports the median per-block ratio
// ("hit/get"; the bar is <= 1.2).
func BenchmarkMemcachedHitRatio(b *testing.B) {
	_, _, hit, get := benchSetup(b)
	benchtest.Interleaved(b, hit, get, "hit/get", "hit-ns", "get-ns")
}
