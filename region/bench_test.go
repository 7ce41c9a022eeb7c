package region_test

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
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

// BenchmarkMemoryGetOrCreateHitParallel is the hit on one hot key from every
// CPU (b.RunParallel). Bar: with 2 CPUs at most 0.6× the ns/op of
// BenchmarkMemoryGetOrCreateHit in the same run, i.e. hits scale with cores.
// BenchmarkRWMutexMapHitParallel and BenchmarkSyncMapHitParallel are the
// peers.
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

// BenchmarkMemoryHitRatio interleaves blocks of GetOrCreate hits with blocks
// of RWMutex map reads, so both see the same machine load, and reports the
// median ratio of their per-operation times ("hit/floor"), the number the
// bar is judged on.
func BenchmarkMemoryHitRatio(b *testing.B) {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	ctx := context.Background()
	create := func(context.Context) (string, error) { return "value", nil }
	region.GetOrCreate(ctx, r, "key", create)
	var mu sync.RWMutex
	m := map[string]string{"key": "value"}
	const block = 2000
	var ratios []float64
	var sink int
	b.ResetTimer()
	for done := 0; done < b.N; done += 2 * block {
		t0 := time.Now()
		for i := 0; i < block; i++ {
			v, _ := region.GetOrCreate(ctx, r, "key", create)
			sink += len(v)
		}
		t1 := time.Now()
		for i := 0; i < block; i++ {
			mu.RLock()
			v := m["key"]
			mu.RUnlock()
			sink += len(v)
		}
		t2 := time.Now()
		ratios = append(ratios, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
	}
	if sink == 0 {
		b.Fatal("no reads")
	}
	sort.Float64s(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "hit/floor")
}

// BenchmarkRWMutexMapHitParallel is BenchmarkRWMutexMapHit from every CPU on
// one key: the reader count of the RWMutex is written by every read.
func BenchmarkRWMutexMapHitParallel(b *testing.B) {
	var mu sync.RWMutex
	m := map[string]string{"key": "value"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.RLock()
			v, ok := m["key"]
			mu.RUnlock()
			if !ok || len(v) != 5 {
				b.Fatal(v)
			}
		}
	})
}

// BenchmarkSyncMapHitParallel is a sync.Map read of one key from every CPU:
// no shared writes, so it scales with cores.
func BenchmarkSyncMapHitParallel(b *testing.B) {
	var m sync.Map
	m.Store("key", "value")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, ok := m.Load("key")
			if !ok || len(v.(string)) != 5 {
				b.Fatal(v)
			}
		}
	})
}

func backendEntry() backends.Entry {
	return backends.Entry{Value: "value", Created: time.Now()}
}

// BenchmarkMemoryBackendGet is the memory backend's own Get of a hot key,
// without the region: what the backend adds to a hit.
func BenchmarkMemoryBackendGet(b *testing.B) {
	m := memory.New()
	defer m.Close()
	ctx := context.Background()
	if err := m.Set(ctx, "key", backendEntry()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Get(ctx, "key"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryBackendGetParallel is BenchmarkMemoryBackendGet from every
// CPU on one key.
func BenchmarkMemoryBackendGetParallel(b *testing.B) {
	m := memory.New()
	defer m.Close()
	ctx := context.Background()
	if err := m.Set(ctx, "key", backendEntry()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Get(ctx, "key"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFailingCreatorStampede starts 100 goroutines calling GetOrCreate
// on one cold key of a memory region whose creator sleeps 50 ms and fails,
// and measures the wall time from their release until the last of them
// returns. It reports that time over the creator's ("x-creator"; bar ≤ 2:
// the waiters share the creator's error instead of re-running it one after
// another) and how often the creator ran per stampede ("creator-runs").
func BenchmarkFailingCreatorStampede(b *testing.B) {
	const (
		callers = 100
		sleep   = 50 * time.Millisecond
	)
	r, err := region.Open("memory", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	errDown := errors.New("backing service down")
	var runs atomic.Int64
	create := func(context.Context) (string, error) {
		runs.Add(1)
		time.Sleep(sleep)
		return "", errDown
	}
	var wall time.Duration
	var succeeded atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := "cold-" + strconv.Itoa(i)
		start := make(chan struct{})
		var ready, done sync.WaitGroup
		ready.Add(callers)
		done.Add(callers)
		for j := 0; j < callers; j++ {
			go func() {
				defer done.Done()
				ready.Done()
				<-start
				if _, err := region.GetOrCreate(ctx, r, key, create); err == nil {
					succeeded.Add(1)
				}
			}()
		}
		ready.Wait()
		t0 := time.Now()
		close(start)
		done.Wait()
		wall += time.Since(t0)
	}
	b.StopTimer()
	if n := succeeded.Load(); n > 0 {
		b.Fatalf("%d callers got no error from a failing creator", n)
	}
	b.ReportMetric(float64(wall)/float64(b.N)/float64(sleep), "x-creator")
	b.ReportMetric(float64(runs.Load())/float64(b.N), "creator-runs")
}
