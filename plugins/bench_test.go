package plugins

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/plugins/internal/pb"
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
// plugin (protocol version 2: the Calls stream over go-plugin's Unix
// socket with mutual TLS). Bar: <= 0.7x BenchmarkGRPCUnaryFloor in the same
// run (see BenchmarkPluginGetVsFloor for the interleaved ratio).
func BenchmarkPluginGet(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchGet(b, be)
}

// floorGet returns a bare unary gRPC call with a 100-byte reply over the
// connection go-plugin set up to be's plugin (Unix socket, AutoMTLS): the
// protocol's unary Get, which the host no longer uses for small values.
func floorGet(b *testing.B, be *Backend) func() {
	ctx := context.Background()
	val := make([]byte, 100)
	if err := be.Set(ctx, "k", backends.Entry{Payload: val}); err != nil {
		b.Fatal(err)
	}
	p, id, err := be.conn()
	if err != nil {
		b.Fatal(err)
	}
	req := &pb.KeyRequest{Instance: id, Key: []byte("k")}
	return func() {
		r, err := p.rpc.Get(ctx, req)
		if err != nil || len(r.Payload) != 100 {
			b.Fatalf("unary Get: %v", err)
		}
	}
}

// BenchmarkGRPCUnaryFloor is the floor BenchmarkPluginGet is measured
// against: a bare unary gRPC round trip with a 100-byte reply over the same
// transport.
func BenchmarkGRPCUnaryFloor(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	call := floorGet(b, be)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call()
	}
}

// BenchmarkPluginGetVsFloor interleaves BenchmarkPluginGet's call and
// BenchmarkGRPCUnaryFloor's on one plugin process, in rounds of 16 of each,
// and reports both per-call times and their ratio (the bar: <= 0.7).
func BenchmarkPluginGetVsFloor(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	floor := floorGet(b, be)
	var tp, tf time.Duration
	const round = 16
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for j := 0; j < round; j++ {
			if _, err := be.Get(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for j := 0; j < round; j++ {
			floor()
		}
		tf += time.Since(t1)
		tp += t1.Sub(t0)
	}
	n := float64(b.N * round)
	b.ReportMetric(float64(tp.Nanoseconds())/n, "plugin-ns/get")
	b.ReportMetric(float64(tf.Nanoseconds())/n, "floor-ns/get")
	b.ReportMetric(float64(tp)/float64(tf), "ratio")
}

// parallel8 runs fn from 8 goroutines whatever GOMAXPROCS is.
func parallel8(b *testing.B, fn func()) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((8 + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fn()
		}
	})
}

// BenchmarkPluginGetParallel: BenchmarkPluginGet from 8 goroutines; ns/op
// is the inverse of throughput. Compare with
// BenchmarkGRPCUnaryFloorParallel in the same run.
func BenchmarkPluginGetParallel(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	if err := be.Set(ctx, "k", backends.Entry{Payload: make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	parallel8(b, func() {
		e, err := be.Get(ctx, "k")
		if err != nil || len(e.Payload) != 100 {
			b.Fatalf("Get: %v", err)
		}
	})
}

// BenchmarkGRPCUnaryFloorParallel: BenchmarkGRPCUnaryFloor from 8
// goroutines.
func BenchmarkGRPCUnaryFloorParallel(b *testing.B) {
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	call := floorGet(b, be)
	b.ReportAllocs()
	b.ResetTimer()
	parallel8(b, call)
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
