//go:build linux

package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
)

// statusKB reads a "VmXxx:  123 kB" line of /proc/self/status.
func statusKB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestLargeFileLowRSS streams a 256 MiB file value to a plugin (StoreFile)
// and back (OpenFile) through the bolt example plugin and the rawfs plugin,
// whose large values live in files, and checks that the host's peak RSS grew
// by less than 64 MiB over its baseline (VmHWM after resetting it through
// clear_refs).
func TestLargeFileLowRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB per plugin")
	}
	for _, name := range []string{"bolt", "rawfs"} {
		t.Run(name, func(t *testing.T) { largeFileLowRSS(t, name) })
	}
}

func largeFileLowRSS(t *testing.T, name string) {
	const size = 256 << 20
	ctx := context.Background()
	dir := t.TempDir()
	b := openT(t, name, backends.Args{"base_dir": dir}, WithTempDir(dir))

	src, err := os.CreateTemp(dir, "src-*")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := sha256.New()
	chunk := make([]byte, 1<<20)
	for i := 0; i < size/len(chunk); i++ {
		for j := range chunk {
			chunk[j] = byte(i ^ j)
		}
		h.Write(chunk)
		if _, err := src.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	want := h.Sum(nil)
	// Unnamed, so that the plugin cannot take it by path: it is streamed.
	os.Remove(src.Name())

	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset VmHWM: %v", err)
	}
	base := statusKB(t, "VmRSS")

	if err := b.StoreFile(ctx, "big", src, backends.Entry{Version: 3}, false); err != nil {
		t.Fatal(err)
	}
	f, e, err := b.OpenFile(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.Reset()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	peak := statusKB(t, "VmHWM")
	if n != size || !bytes.Equal(h.Sum(nil), want) || e.Version != 3 {
		t.Fatalf("OpenFile gave %d bytes (version %d), checksum match %v", n, e.Version, bytes.Equal(h.Sum(nil), want))
	}
	growth := (peak - base) << 10
	t.Logf("host RSS baseline %d MiB, peak %d MiB, growth %.1f MiB for a 256 MiB value both ways", base>>10, peak>>10, float64(growth)/(1<<20))
	if growth >= 64<<20 {
		t.Errorf("host peak RSS grew by %d MiB, want < 64 MiB", growth>>20)
	}
}
