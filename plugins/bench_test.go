package plugins

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/backends/rawfs"
)

// quiet keeps the plugins' log lines out of benchmark output.
var quiet = WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

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
	be, err := Open(pluginPath("memory"), nil, quiet)
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
	be, err := Open(pluginPath("memory"), backends.Args{"copy_values": true}, quiet)
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

// fileRoundTrip stores a 64 MiB file value with StoreFile (copy) and reads
// it back with OpenFile on be.
func fileRoundTrip(b *testing.B, be backends.Backend) {
	ctx := context.Background()
	src, err := os.CreateTemp(b.TempDir(), "src-*")
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	chunk := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		for j := range chunk {
			chunk[j] = byte(i * j)
		}
		if _, err := src.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	fs := be.(backends.FileStore)
	b.SetBytes(2 * 64 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fs.StoreFile(ctx, "big", src, backends.Entry{}, false); err != nil {
			b.Fatal(err)
		}
		f, _, err := fs.OpenFile(ctx, "big")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, f)
		f.Close()
		if err != nil || n != 64<<20 {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// BenchmarkPluginFileThroughput: MB/s of a 64 MiB file value stored and read
// back through the rawfs backend served as a plugin (chunks over gRPC both
// ways, a temporary file on each side).
func BenchmarkPluginFileThroughput(b *testing.B) {
	dir := b.TempDir()
	be, err := Open(pluginPath("rawfs"), backends.Args{"base_dir": dir}, WithTempDir(dir), quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	fileRoundTrip(b, be)
}

// BenchmarkInProcessFileThroughput is the baseline of
// BenchmarkPluginFileThroughput: the same on rawfs in-process.
func BenchmarkInProcessFileThroughput(b *testing.B) {
	be, err := rawfs.Open(backends.Args{"base_dir": b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	fileRoundTrip(b, be)
}
