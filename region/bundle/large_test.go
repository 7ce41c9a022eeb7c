//go:build linux

package bundle_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/bundle"
)

// vmHWM returns the process's peak resident set size in bytes.
func vmHWM(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// genReader generates n bytes of a cheap, position-dependent pattern (no
// two 8-byte words of a block alike), so that nothing is held in memory and
// a misplaced byte changes the checksum.
type genReader struct{ off, n int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n-g.off {
		p = p[:g.n-g.off]
	}
	p = p[:len(p)&^7]
	if len(p) == 0 {
		return 0, io.ErrShortBuffer
	}
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], uint64(g.off+int64(i))*0x9E3779B97F4A7C15)
	}
	g.off += int64(len(p))
	return len(p), nil
}

// TestLargeMemberFlatMemory stores and verifies a bundle with a 1 GiB
// member and reads the member back, checking that the peak RSS grows by
// less than 64 MiB.
func TestLargeMemberFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB")
	}
	const size = 1 << 30
	dir := os.Getenv("REGIONCACHE_BENCH_DIR") // keep big files out of a tmpfs if asked
	base, err := os.MkdirTemp(dir, "bundle-large-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	r, err := region.Open("rawfs", backends.Args{"base_dir": base})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	want := sha256.New()
	io.Copy(want, &genReader{n: size})
	wantSum := hex.EncodeToString(want.Sum(nil))

	runtime.GC()
	debug.FreeOSMemory()
	before := vmHWM(t)
	start := time.Now()
	ctx := context.Background()
	b, err := bundle.GetOrCreate(ctx, r, "big", 1, func(ctx context.Context, w *bundle.Writer) error {
		if err := w.AddBytes("small.txt", []byte("hello")); err != nil {
			return err
		}
		return w.Add("big.bin", size, &genReader{n: size})
	})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	b.Close()

	start = time.Now()
	b, err = bundle.GetOrCreate(ctx, r, "big", 1, func(context.Context, *bundle.Writer) error {
		t.Error("creator ran on a hit")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hit := time.Since(start)
	sr, err := b.Open("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	if n, err := io.Copy(got, sr); err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if s := hex.EncodeToString(got.Sum(nil)); s != wantSum || b.Members()[1].SHA256 != wantSum {
		t.Fatalf("member checksum %s (listed %s), want %s", s, b.Members()[1].SHA256, wantSum)
	}
	growth := vmHWM(t) - before
	t.Logf("1 GiB member: create+store %v, hit (verified) %v, peak RSS growth %.1f MiB", created, hit, float64(growth)/(1<<20))
	if growth >= 64<<20 {
		t.Fatalf("peak RSS grew by %.1f MiB, want < 64 MiB", float64(growth)/(1<<20))
	}
}
