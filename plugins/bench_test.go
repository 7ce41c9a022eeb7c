package plugins

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
)

// benchGet measures Get of a 100-byte value on b, and reports the median of
// per-call times measured in the same loop (median-ns/op) next to the mean.
func benchGet(b *testing.B, be backends.Backend) {
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range val {
		val[i] = byte(i)
	}
	if err := be.Set(ctx, "k", backends.Entry{Payload: val, Created: time.Now(), Version: 1}); err != nil {
		b.Fatal(err)
	}
	samples := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		e, err := be.Get(ctx, "k")
		if err != nil || len(e.Payload) != 100 {
			b.Fatalf("Get: %v (%d bytes)", err, len(e.Payload))
		}
		if len(samples) < cap(samples) {
			samples = append(samples, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	if len(samples) > 0 {
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "median-ns/op")
	}
}

// BenchmarkPluginGet: a 100-byte Get through the memory backend served as a
// plugin (gRPC over a Unix socket with mutual TLS). Bar: median <= 150 us.
func BenchmarkPluginGet(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchGet(b, be)
}

// BenchmarkInProcessGet is the baseline of BenchmarkPluginGet: the same Get
// on the in-process memory backend.
func BenchmarkInProcessGet(b *testing.B) {
	be, err := memory.Open(backends.Args{"copy_values": true})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchGet(b, be)
}

// BenchmarkPluginLargeValue measures the throughput (MB/s) of a 64 MiB value
// set and read back through the memory backend served as a plugin, in 1 MiB
// chunks both ways.
func BenchmarkPluginLargeValue(b *testing.B) {
	be, err := Open(pluginPath("memory"), backends.Args{"copy_values": true})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	val := make([]byte, 64<<20)
	for i := range val {
		val[i] = byte(i * 7)
	}
	b.SetBytes(2 * int64(len(val)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := be.Set(ctx, "big", backends.Entry{Payload: val}); err != nil {
			b.Fatal(err)
		}
		e, err := be.Get(ctx, "big")
		if err != nil || len(e.Payload) != len(val) {
			b.Fatalf("Get: %v (%d bytes)", err, len(e.Payload))
		}
	}
}
