package bundle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/bundle"
)

var three = []struct{ name, data string }{
	{"a.csv", "x,y\n1,2\n"},
	{"dir/b.json", `{"b":true}`},
	{"c.bin", strings.Repeat("\x00\x01\x02", 10000)},
}

func openRegion(t *testing.T, backend string) *region.Region {
	t.Helper()
	r, err := region.Open(backend, backends.Args{"base_dir": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// createThree writes the three members, one through each Writer method.
func createThree(calls *int) func(context.Context, *bundle.Writer) error {
	return func(ctx context.Context, w *bundle.Writer) error {
		*calls++
		if err := w.AddBytes(three[0].name, []byte(three[0].data)); err != nil {
			return err
		}
		if err := w.Add(three[1].name, int64(len(three[1].data)), strings.NewReader(three[1].data)); err != nil {
			return err
		}
		f, err := os.CreateTemp("", "member-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(three[2].data); err != nil {
			return err
		}
		f.Close()
		return w.AddFile(three[2].name, f.Name())
	}
}

func checkThree(t *testing.T, b *bundle.Bundle, version int) {
	t.Helper()
	if b.Version() != version {
		t.Errorf("Version() = %d, want %d", b.Version(), version)
	}
	names := b.Names()
	if len(names) != 3 {
		t.Fatalf("Names() = %q, want 3 members", names)
	}
	for i, m := range three {
		if names[i] != m.name {
			t.Errorf("member %d is %q, want %q", i, names[i], m.name)
		}
		got, err := b.ReadFile(m.name)
		if err != nil || string(got) != m.data {
			t.Errorf("ReadFile(%q) = %d bytes, %v; want %d bytes", m.name, len(got), err, len(m.data))
		}
		sum := sha256.Sum256([]byte(m.data))
		if mm := b.Members()[i]; mm.SHA256 != hex.EncodeToString(sum[:]) || mm.Size != int64(len(m.data)) {
			t.Errorf("Members()[%d] = %+v", i, mm)
		}
	}
	if _, err := b.Open("nope"); !errors.Is(err, bundle.ErrNoMember) {
		t.Errorf("Open(nope): %v, want ErrNoMember", err)
	}
}

func TestRoundTripThreeFiles(t *testing.T) {
	for _, backend := range []string{"rawfs", "filesystem"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			r := openRegion(t, backend)
			calls := 0
			for i := range 3 {
				b, err := bundle.GetOrCreate(ctx, r, "three", 2, createThree(&calls))
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				checkThree(t, b, 2)
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if calls != 1 {
				t.Fatalf("creator ran %d times for 3 calls, want 1", calls)
			}
		})
	}
}

// tarMember is a member of a hand-made archive.
type tarMember struct{ name, data string }

// craft writes a bundle archive by hand: members, then (unless man is nil)
// a manifest.
func craft(t *testing.T, members []tarMember, man any) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Size: int64(len(m.data)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m.data))
	}
	if man != nil {
		data, err := json.Marshal(man)
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: bundle.ManifestName, Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

type mm struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func goodManifest(version int, members ...tarMember) map[string]any {
	var list []mm
	for _, m := range members {
		list = append(list, mm{m.name, int64(len(m.data)), sum(m.data)})
	}
	return map[string]any{"format": 1, "version": version, "members": list}
}

// store puts raw archive bytes under key, bypassing the bundle package, as
// a valid entry of the backend.
func store(t *testing.T, r *region.Region, backend, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	if backend == "filesystem" {
		if err := region.Set(ctx, r, key, data); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := region.GetOrCreateFile(ctx, r, key, func(context.Context) (*os.File, error) {
		tmp, err := r.CreateTemp("craft-*")
		if err != nil {
			return nil, err
		}
		_, err = tmp.Write(data)
		return tmp, err
	}, region.MoveFile())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestDamageIsAMiss(t *testing.T) {
	a := tarMember{"a.csv", "x,y\n1,2\n"}
	b := tarMember{"b.json", `{"b":true}`}
	changed := tarMember{"a.csv", "x,y\n1,3\n"}
	cases := []struct {
		name string
		data func(t *testing.T) []byte
	}{
		{"valid control", func(t *testing.T) []byte { return craft(t, []tarMember{a, b}, goodManifest(1, a, b)) }},
		{"changed member", func(t *testing.T) []byte { return craft(t, []tarMember{changed, b}, goodManifest(1, a, b)) }},
		{"extra member", func(t *testing.T) []byte {
			return craft(t, []tarMember{a, b, {"extra.txt", "surprise"}}, goodManifest(1, a, b))
		}},
		{"missing checksum entry", func(t *testing.T) []byte {
			m := goodManifest(1, a, b)
			m["members"].([]mm)[1].SHA256 = ""
			return craft(t, []tarMember{a, b}, m)
		}},
		{"member missing from the archive", func(t *testing.T) []byte { return craft(t, []tarMember{a}, goodManifest(1, a, b)) }},
		{"duplicate member", func(t *testing.T) []byte { return craft(t, []tarMember{a, b, a}, goodManifest(1, a, b)) }},
		{"no manifest", func(t *testing.T) []byte { return craft(t, []tarMember{a, b}, nil) }},
		{"bad manifest", func(t *testing.T) []byte {
			return craft(t, []tarMember{a, b}, "not an object")
		}},
		{"truncated", func(t *testing.T) []byte {
			d := craft(t, []tarMember{a, b}, goodManifest(1, a, b))
			return d[:700]
		}},
		{"random bytes", func(t *testing.T) []byte { return bytes.Repeat([]byte{0xA5, 0x11, 0x00, 0xff}, 1000) }},
		{"lower version", func(t *testing.T) []byte { return craft(t, []tarMember{a, b}, goodManifest(0, a, b)) }},
	}
	for _, backend := range []string{"rawfs", "filesystem"} {
		for _, c := range cases {
			t.Run(backend+"/"+c.name, func(t *testing.T) {
				ctx := context.Background()
				r := openRegion(t, backend)
				store(t, r, backend, "k", c.data(t))
				calls := 0
				got, err := bundle.GetOrCreate(ctx, r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
					calls++
					if err := w.AddBytes("fresh.txt", []byte("fresh")); err != nil {
						return err
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				defer got.Close()
				if c.name == "valid control" {
					if calls != 0 || strings.Join(got.Names(), ",") != "a.csv,b.json" {
						t.Fatalf("a valid hand-made bundle was not served: creator ran %d times, members %q", calls, got.Names())
					}
					return
				}
				if calls != 1 {
					t.Fatalf("creator ran %d times, want 1 (the damaged bundle must be a miss)", calls)
				}
				if names := got.Names(); len(names) != 1 || names[0] != "fresh.txt" {
					t.Fatalf("got members %q, want only the fresh bundle's", names)
				}
				// And the fresh bundle replaced the damaged one.
				again, err := bundle.GetOrCreate(ctx, r, "k", 1, func(context.Context, *bundle.Writer) error {
					calls++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				again.Close()
				if calls != 1 {
					t.Fatalf("the recreated bundle was not stored: creator ran again")
				}
			})
		}
	}
}

// TestChangedBehindTheCachesBack flips a byte of a stored member in place,
// in the cache's own file: the next call must not see the changed byte.
func TestChangedBehindTheCachesBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls := 0
	b, err := bundle.GetOrCreate(ctx, r, "k", 1, createThree(&calls))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	marker := []byte(three[1].data)
	found := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if i := bytes.Index(data, marker); i >= 0 {
			found++
			fi, _ := os.Stat(p)
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				os.Chmod(p, 0o644)
				f, err = os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
			}
			f.WriteAt([]byte("{"), int64(i+1)) // same size
			f.Close()
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
	if found != 1 {
		t.Fatalf("found the member in %d files of the cache, want 1", found)
	}
	b, err = bundle.GetOrCreate(ctx, r, "k", 1, createThree(&calls))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkThree(t, b, 1)
	if calls != 2 {
		t.Fatalf("creator ran %d times, want 2 (the changed bundle is a miss)", calls)
	}
}

func TestVersions(t *testing.T) {
	ctx := context.Background()
	r := openRegion(t, "rawfs")
	write := func(v int, opts ...bundle.Option) (*bundle.Bundle, bool, error) {
		ran := false
		b, err := bundle.GetOrCreate(ctx, r, "k", v, func(ctx context.Context, w *bundle.Writer) error {
			ran = true
			return w.AddBytes("v", []byte{byte(v)})
		}, opts...)
		return b, ran, err
	}
	b, ran, err := write(3)
	if err != nil || !ran || b.Version() != 3 {
		t.Fatalf("v3: ran %v, %v", ran, err)
	}
	b.Close()
	// A caller writing version 2 that accepts 2 and up is served version 3.
	if b, ran, err = write(2); err != nil || ran || b.Version() != 3 {
		t.Fatalf("v2 caller: ran %v, err %v", ran, err)
	}
	b.Close()
	// A caller writing 4 treats 3 as a miss.
	if b, ran, err = write(4); err != nil || !ran || b.Version() != 4 {
		t.Fatalf("v4 caller: ran %v, err %v", ran, err)
	}
	b.Close()
	// MinVersion lower than the written version accepts older bundles.
	if b, ran, err = write(5, bundle.MinVersion(4)); err != nil || ran || b.Version() != 4 {
		t.Fatalf("v5 caller with MinVersion(4): ran %v, err %v", ran, err)
	}
	b.Close()
	if _, _, err = write(1, bundle.MinVersion(2)); err == nil || !strings.Contains(err.Error(), "MinVersion(2)") {
		t.Fatalf("MinVersion above the version written: %v", err)
	}
}

func TestCreatorErrorsAndBadInput(t *testing.T) {
	ctx := context.Background()
	r := openRegion(t, "rawfs")
	boom := errors.New("boom")
	_, err := bundle.GetOrCreate(ctx, r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
		w.AddBytes("a", []byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("creator error: %v", err)
	}
	bad := map[string]func(w *bundle.Writer) error{
		"empty name":     func(w *bundle.Writer) error { return w.AddBytes("", nil) },
		"absolute name":  func(w *bundle.Writer) error { return w.AddBytes("/etc/passwd", nil) },
		"dot-dot name":   func(w *bundle.Writer) error { return w.AddBytes("../x", nil) },
		"manifest name":  func(w *bundle.Writer) error { return w.AddBytes(bundle.ManifestName, nil) },
		"duplicate name": func(w *bundle.Writer) error { w.AddBytes("a", nil); return w.AddBytes("a", nil) },
		"short reader":   func(w *bundle.Writer) error { return w.Add("a", 10, strings.NewReader("abc")) },
		"negative size":  func(w *bundle.Writer) error { return w.Add("a", -1, strings.NewReader("")) },
		"missing file":   func(w *bundle.Writer) error { return w.AddFile("a", "/nonexistent/file") },
		"directory":      func(w *bundle.Writer) error { return w.AddFile("a", os.TempDir()) },
	}
	for name, f := range bad {
		var addErr error
		_, err := bundle.GetOrCreate(ctx, r, "bad-"+name, 1, func(ctx context.Context, w *bundle.Writer) error {
			addErr = f(w)
			return addErr
		})
		if addErr == nil || err == nil || !strings.Contains(err.Error(), "bundle") {
			t.Errorf("%s: Add gave %v, GetOrCreate %v; want an error naming the bundle problem", name, addErr, err)
		}
	}
	// Nothing was stored by the failed creators.
	calls := 0
	b, err := bundle.GetOrCreate(ctx, r, "k", 1, createThree(&calls))
	if err != nil || calls != 1 {
		t.Fatalf("after a failed creator: calls %d, %v", calls, err)
	}
	b.Close()
	if _, err := bundle.GetOrCreate(ctx, r, "k", 1, nil); err == nil {
		t.Fatal("nil create accepted")
	}
	if _, err := bundle.GetOrCreate(ctx, nil, "k", 1, createThree(&calls)); err == nil {
		t.Fatal("nil region accepted")
	}
}

func TestCancelledCreator(t *testing.T) {
	r := openRegion(t, "rawfs")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := bundle.GetOrCreate(ctx, r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
		cancel()
		return w.Add("big", 1<<30, zeroReader{})
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled creator: %v", err)
	}
}

func TestMaxInMemory(t *testing.T) {
	r := openRegion(t, "filesystem")
	_, err := bundle.GetOrCreate(context.Background(), r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
		return w.Add("big", 1<<20, zeroReader{})
	}, bundle.MaxInMemory(64<<10))
	if err == nil || !strings.Contains(err.Error(), "MaxInMemory") {
		t.Fatalf("over MaxInMemory: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestConcurrentCallersOneCreation(t *testing.T) {
	ctx := context.Background()
	r := openRegion(t, "rawfs")
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := bundle.GetOrCreate(ctx, r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
				mu.Lock()
				calls++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				return w.AddBytes("a", []byte("A"))
			})
			if err != nil {
				t.Error(err)
				return
			}
			defer b.Close()
			if got, _ := b.ReadFile("a"); string(got) != "A" {
				t.Errorf("read %q", got)
			}
		}()
	}
	wg.Wait()
	if calls != 1 {
		t.Fatalf("16 concurrent callers ran the creator %d times, want 1", calls)
	}
}

// A stale bundle served during a background regeneration is still verified:
// a damaged stale entry is never served.
func TestStaleDamagedNotServedInBackground(t *testing.T) {
	ctx := context.Background()
	r := openRegion(t, "rawfs")
	a := tarMember{"a", "old"}
	store(t, r, "rawfs", "k", craft(t, []tarMember{{"a", "OLD"}}, goodManifest(1, a)))
	b, err := bundle.GetOrCreate(ctx, r, "k", 1, func(ctx context.Context, w *bundle.Writer) error {
		return w.AddBytes("a", []byte("new"))
	}, bundle.WithCallOptions(region.ExpireAfter(0), region.RegenerateInBackground()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, _ := b.ReadFile("a"); string(got) != "new" {
		t.Fatalf("served %q, want the regenerated bundle", got)
	}
}
