package export_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/export"
)

func writeFile(t testing.TB, path string, data []byte) *os.File {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExportCachedFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := region.Open("rawfs", backends.Args{"base_dir": filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := bytes.Repeat([]byte("cached bytes "), 100000)
	create := func(context.Context) (*os.File, error) {
		tmp, err := r.CreateTemp("v-*")
		if err != nil {
			return nil, err
		}
		_, err = tmp.Write(data)
		return tmp, err
	}
	dst := filepath.Join(dir, "out", "data.bin")
	os.Mkdir(filepath.Dir(dst), 0o755)
	for range 2 { // created, then from the cache, over the first export
		if err := export.GetOrCreateFile(ctx, r, "k", dst, create, export.WithCallOptions(region.MoveFile())); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("exported %d bytes, %v; want %d", len(got), err, len(data))
		}
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode())
	}
	if err := export.GetOrCreateFile(ctx, r, "k", dst, create, export.Mode(0o600)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "out", ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// Exporting changed nothing in the cache: a third call is a hit with the
	// same bytes.
	f, err := region.GetOrCreateFile(ctx, r, "k", func(context.Context) (*os.File, error) { return nil, errors.New("miss") })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, data) {
		t.Fatal("cached file changed by the export")
	}
}

// TestReaderNeverSeesPartialDestination exports two different 4 MiB files
// over one destination again and again while readers read it: every read
// is entirely the old content, A or B.
func TestReaderNeverSeesPartialDestination(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 20
	a := writeFile(t, filepath.Join(dir, "a"), bytes.Repeat([]byte{'a'}, size))
	b := writeFile(t, filepath.Join(dir, "b"), bytes.Repeat([]byte{'b'}, size))
	defer a.Close()
	defer b.Close()
	dst := filepath.Join(dir, "dst")
	os.WriteFile(dst, []byte("old"), 0o644)
	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := os.ReadFile(dst)
				if err != nil {
					bad.Add(1)
					t.Errorf("read: %v", err)
					return
				}
				reads.Add(1)
				if string(got) == "old" {
					continue
				}
				if len(got) != size || (bytes.Count(got, got[:1]) != size) || (got[0] != 'a' && got[0] != 'b') {
					bad.Add(1)
					t.Errorf("read a partial or mixed destination: %d bytes starting %q", len(got), got[:min(len(got), 8)])
					return
				}
			}
		}()
	}
	for i := range 40 {
		src := a
		if i%2 == 1 {
			src = b
		}
		if err := export.File(context.Background(), src, dst, export.NoSync()); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads during 40 exports, %d bad", reads.Load(), bad.Load())
}

// TestMain lets the test binary export in a loop until killed: with
// REGIONCACHE_EXPORT_HELPER set it exports EXPORT_A and EXPORT_B to
// EXPORT_DST alternately, forever.
func TestMain(m *testing.M) {
	if os.Getenv("REGIONCACHE_EXPORT_HELPER") == "" {
		os.Exit(m.Run())
	}
	a, err1 := os.Open(os.Getenv("EXPORT_A"))
	b, err2 := os.Open(os.Getenv("EXPORT_B"))
	if err1 != nil || err2 != nil {
		fmt.Println(err1, err2)
		os.Exit(1)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		src := a
		if i%2 == 1 {
			src = b
		}
		if err := export.File(context.Background(), src, os.Getenv("EXPORT_DST")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
}

// TestKilledMidExport SIGKILLs a process exporting 8 MiB files at random
// moments (in odd rounds, after its first export landed): the destination
// is always a complete file.
func TestKilledMidExport(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	os.WriteFile(filepath.Join(dir, "a"), bytes.Repeat([]byte{'a'}, size), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), bytes.Repeat([]byte{'b'}, size), 0o644)
	dst := filepath.Join(dir, "out", "dst")
	os.Mkdir(filepath.Dir(dst), 0o755)
	os.WriteFile(dst, []byte("old"), 0o644)
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "REGIONCACHE_EXPORT_HELPER=1", "EXPORT_A="+filepath.Join(dir, "a"),
			"EXPORT_B="+filepath.Join(dir, "b"), "EXPORT_DST="+dst)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		io.ReadFull(out, buf)
		if round%2 == 1 {
			deadline := time.Now().Add(30 * time.Second)
			for fi, err := os.Stat(dst); err == nil && fi.Size() == 3 && time.Now().Before(deadline); fi, err = os.Stat(dst) {
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "old" && (len(got) != size || bytes.Count(got, got[:1]) != size) {
			t.Fatalf("round %d: destination torn: %d bytes starting %q", round, len(got), got[:min(len(got), 8)])
		}
		t.Logf("round %d: destination holds %d bytes of %q", round, len(got), got[:1])
		if round%2 == 1 && string(got) == "old" {
			t.Fatalf("round %d: no export landed before the kill; the round proves nothing", round)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "out", ".dst.export-*"))
	t.Logf("%d temporary files left by killed exports (documented)", len(left))
}

func TestCancelledAndBadInput(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "src"), []byte("new"))
	defer src.Close()
	dst := filepath.Join(dir, "dst")
	os.WriteFile(dst, []byte("old"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := export.File(ctx, src, dst); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Fatalf("a cancelled export changed dst to %q", got)
	}
	for name, c := range map[string]struct {
		src  *os.File
		dst  string
		want string
	}{
		"nil src":         {nil, dst, "src is nil"},
		"empty dst":       {src, "", "dst is empty"},
		"dst a directory": {src, dir, "is a directory"},
		"missing dir":     {src, filepath.Join(dir, "no", "such", "dir", "f"), "no such file"},
	} {
		err := export.File(context.Background(), c.src, c.dst)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// An empty source exports an empty file.
	empty := writeFile(t, filepath.Join(dir, "empty"), nil)
	defer empty.Close()
	if err := export.File(context.Background(), empty, dst); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dst); fi.Size() != 0 {
		t.Fatalf("empty export: %d bytes", fi.Size())
	}
}
