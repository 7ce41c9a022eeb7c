package region_test

import (
	"context"
	"sync"
	"testing"

	"github.com/regioncache/regioncache/region"
)

// BenchmarkMemoryGetOrCreateHit measures a GetOrCreate hit of a string value
// on the memory backend. Compare it with BenchmarkRWMutexMapHit, the floor.
func BenchmarkMemoryGetOrCreateHit(b *testing.B) {
	r, err := region.Open("memory", nil)
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

// BenchmarkRWMutexMapHit is the floor: a read of a sync.RWMutex-guarded map.
func BenchmarkRWMutexMapHit(b *testing.B) {
	var mu sync.RWMutex
	m := map[string]string{"key": "value"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mu.RLock()
		v, ok := m["key"]
		mu.RUnlock()
		if !ok || len(v) != 5 {
			b.Fatal(v)
		}
	}
}

// BenchmarkMemoryGetOrCreateHitExpiring is a hit on a region with an
// expiration, which adds a clock read per call.
func BenchmarkMemoryGetOrCreateHitExpiring(b *testing.B) {
	r, _ := region.Open("memory", nil, region.WithExpiration(1<<40))
	defer r.Close()
	ctx := context.Background()
	create := func(context.Context) (string, error) { return "value", nil }
	region.GetOrCreate(ctx, r, "key", create)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := region.GetOrCreate(ctx, r, "key", create); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryGetOrCreateHitParallel is the hit under contention from
// every CPU.
func BenchmarkMemoryGetOrCreateHitParallel(b *testing.B) {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	ctx := context.Background()
	create := func(context.Context) (string, error) { return "value", nil }
	region.GetOrCreate(ctx, r, "key", create)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := region.GetOrCreate(ctx, r, "key", create); err != nil {
				b.Fatal(err)
			}
		}
	})
}
