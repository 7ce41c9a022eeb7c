package rawfs_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
)

// Run with TMPDIR on a directory outside /tmp (see docs/benchmarks.md):
//
//	TMPDIR=/work/tmp-bench go test -run '^$' -bench . -benchtime 5x ./backends/rawfs/

func openBench(b *testing.B) *rawfs.Backend {
	b.Helper()
	be, err := rawfs.Open(backends.Args{"base_dir": b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// BenchmarkRawfsStoreMove stores a file created with CreateTemp by moving it
// (a rename). The files are sparse, so making them costs nothing; the store
// must not depend on the size: compare size=1KiB with size=1GiB. A store
// creates one small file (the metadata entry); file creation is slow and
// drifts on these machines, so the loop also times that floor (create, write
// 100 bytes, rename) and reports it as floor-ns/op.
func BenchmarkRawfsStoreMove(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int64
	}{{"1KiB", 1 << 10}, {"1GiB", 1 << 30}} {
		b.Run("size="+sz.name, func(b *testing.B) {
			be := openBench(b)
			ctx := context.Background()
			e := backends.Entry{Created: time.Now()}
			floorDir := b.TempDir()
			var storeNs, floorNs time.Duration
			for i := 0; i < b.N; i++ {
				f, err := be.CreateTemp("bench-*")
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Truncate(sz.n); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := be.StoreFile(ctx, fmt.Sprint("k", i), f, e, true); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				g, err := os.CreateTemp(floorDir, "floor-*")
				if err != nil {
					b.Fatal(err)
				}
				g.Write(make([]byte, 100))
				g.Close()
				if err := os.Rename(g.Name(), filepath.Join(floorDir, fmt.Sprint(i%100))); err != nil {
					b.Fatal(err)
				}
				storeNs += t1.Sub(t0)
				floorNs += time.Since(t1)
				f.Close()
			}
			fsstoretest.ReportVsFloor(b, "store", storeNs, floorNs)
		})
	}
}

// makeSource writes an n-byte file of real (non-sparse, non-zero) data.
func makeSource(b *testing.B, dir string, n int) string {
	b.Helper()
	p := filepath.Join(dir, "src")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*31 + i>>8)
	}
	for w := 0; w < n; w += len(buf) {
		if _, err := f.Write(buf[:min(len(buf), n-w)]); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	return p
}

const copySize = 256 << 20

// copyBench runs body as the sub-benchmark size=256MiB of b, given a fresh
// directory dir holding a copySize source file src, with b.SetBytes(copySize)
// and the timer reset.
func copyBench(b *testing.B, body func(b *testing.B, dir, src string)) {
	b.Run("size=256MiB", func(b *testing.B) {
		dir := b.TempDir()
		src := makeSource(b, dir, copySize)
		b.SetBytes(copySize)
		b.ResetTimer()
		body(b, dir, src)
	})
}

// cp replaces dst by a copy of src made by cp(1): the previous dst is
// removed first, as a store removes the previous data file of its key.
func cp(b *testing.B, src, dst string) {
	os.Remove(dst)
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v %s", err, out)
	}
}

// BenchmarkRawfsStoreCopy stores a 256 MiB file by copying it (no move).
// Compare with BenchmarkIOCopy and BenchmarkCp, the same copy by io.Copy
// between two *os.File and by cp(1); the loop also runs cp(1) of the same
// file after each store (interleaved) and reports store-MB/s, cp-MB/s and
// store/cp, the fraction of cp's throughput the store reaches.
func BenchmarkRawfsStoreCopy(b *testing.B) {
	copyBench(b, func(b *testing.B, dir, src string) {
		be := openBench(b)
		ctx := context.Background()
		var storeNs, cpNs time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := be.StoreFile(ctx, "k", f, backends.Entry{}, false); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			f.Close()
			// As the store replaces k and deletes its previous data
			// file, cp replaces dst (deleting the previous one): the
			// removal is timed on both sides.
			t2 := time.Now()
			cp(b, src, filepath.Join(dir, "dst"))
			storeNs += t1.Sub(t0)
			cpNs += time.Since(t2)
		}
		b.StopTimer()
		mbps := func(d time.Duration) float64 { return float64(copySize) * float64(b.N) / d.Seconds() / 1e6 }
		b.ReportMetric(mbps(storeNs), "store-MB/s")
		b.ReportMetric(mbps(cpNs), "cp-MB/s")
		b.ReportMetric(float64(cpNs)/float64(storeNs), "store/cp")
	})
}

// BenchmarkIOCopy is io.Copy of the same 256 MiB file into a new file.
func BenchmarkIOCopy(b *testing.B) {
	copyBench(b, func(b *testing.B, dir, src string) {
		for i := 0; i < b.N; i++ {
			in, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			dst := filepath.Join(dir, "dst")
			os.Remove(dst)
			out, err := os.Create(dst)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(out, in); err != nil {
				b.Fatal(err)
			}
			out.Close()
			in.Close()
		}
	})
}

// BenchmarkCp is cp(1) of the same 256 MiB file (including its process
// start, about a millisecond).
func BenchmarkCp(b *testing.B) {
	copyBench(b, func(b *testing.B, dir, src string) {
		for i := 0; i < b.N; i++ {
			cp(b, src, filepath.Join(dir, "dst"))
		}
	})
}
