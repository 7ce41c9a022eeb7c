package filesystem_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
	"github.com/regioncache/regioncache/region"
)

// Run with TMPDIR on a directory outside /tmp (see docs/benchmarks.md):
//
//	TMPDIR=/work/tmp-bench go test -run '^$' -bench . -benchtime 1s ./backends/filesystem/

// BenchmarkFilesystemHit is a region GetOrCreate hit on a 100-byte []byte
// value: open, fstat, read and close of one entry file, checksum, decode.
// Compare with BenchmarkOSReadFile; the same loop also times os.ReadFile of
// a 100-byte file in the same shard directory after each hit (interleaved,
// so that both see the same machine), and reports hit-ns/op, floor-ns/op and
// hit/floor (ns/op is the two together).
func BenchmarkFilesystemHit(b *testing.B) {
	dir := b.TempDir()
	r, err := region.Open("filesystem", backends.Args{"base_dir": dir})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	val := make([]byte, 100)
	create := func(context.Context) ([]byte, error) { return val, nil }
	if _, err := region.GetOrCreate(ctx, r, "key", create); err != nil {
		b.Fatal(err)
	}
	floor := filepath.Join(dir, fsstore.Name("key")[:2], "0123456789abcdef0123456789abcdef.floor")
	if err := os.WriteFile(floor, val, 0o600); err != nil {
		b.Fatal(err)
	}
	var hitNs, floorNs time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		v, err := region.GetOrCreate(ctx, r, "key", create)
		if err != nil || len(v) != 100 {
			b.Fatal(len(v), err)
		}
		t1 := time.Now()
		if v, err := os.ReadFile(floor); err != nil || len(v) != 100 {
			b.Fatal(err)
		}
		hitNs += t1.Sub(t0)
		floorNs += time.Since(t1)
	}
	b.StopTimer()
	fsstoretest.ReportVsFloor(b, "hit", hitNs, floorNs)
	if st := r.Stats(); st.Creations != 1 {
		b.Fatalf("%d creations: the benchmark measured misses", st.Creations)
	}
}

// BenchmarkOSReadFile is the floor for BenchmarkFilesystemHit: os.ReadFile of
// a 100-byte file in a shard directory of the same kind of cache directory.
func BenchmarkOSReadFile(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ab")
	os.Mkdir(dir, 0o700)
	p := filepath.Join(dir, "0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(p, make([]byte, 100), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := os.ReadFile(p)
		if err != nil || len(v) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilesystemSet writes new 100-byte values into a cache that is full
// at the given number of entries, with cache_size eviction on, so every set
// also pays for eviction. In the same loop it times the floor, a plain
// temp-file + rename write in the same directory, because file creation cost
// on this kind of machine drifts (it slows after mass deletions, by up to
// 50x); compare the set/floor metric between the two sizes.
func BenchmarkFilesystemSet(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			ctx := context.Background()
			val := make([]byte, 100)
			// An entry file is a 40-byte header, the 12-byte key, the
			// 100-byte value and an 8-byte checksum.
			const entrySize = 40 + 12 + 100 + 8
			be, err := backends.Open("filesystem", backends.Args{"base_dir": dir, "cache_size": n * entrySize})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			e := backends.Entry{Payload: val, Created: time.Now()}
			for i := range n {
				if err := be.Set(ctx, fmt.Sprintf("fill%07d", i), e); err != nil {
					b.Fatal(err)
				}
			}
			var setNs, floorNs time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key := fmt.Sprintf("new%09d", i)
				t0 := time.Now()
				if err := be.Set(ctx, key, e); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				// The floor writes into the same shard directory, which
				// is in the same state (creation cost there depends on
				// the directory's history of deletions).
				if err := floorWrite(filepath.Join(dir, fsstore.Name(key)[:2]), val); err != nil {
					b.Fatal(err)
				}
				setNs += t1.Sub(t0)
				floorNs += time.Since(t1)
			}
			b.StopTimer()
			fsstoretest.ReportVsFloor(b, "set", setNs, floorNs)
			st, err := be.(backends.StatReporter).StorageStats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if st.Entries > int64(n)*101/100 || st.Entries < int64(n)*8/10 {
				b.Fatalf("%d entries after the run, want about %d", st.Entries, n)
			}
		})
	}
}

// floorWrite is a plain file replacement: write a temporary file of the
// same size as an entry, rename it over a fixed name in dir.
func floorWrite(dir string, val []byte) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(val); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "floor"))
}
