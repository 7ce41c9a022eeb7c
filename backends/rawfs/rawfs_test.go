//go:build unix

package rawfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/region"
)

var ctx = context.Background()

func openRegion(t *testing.T, args backends.Args) (*region.Region, *rawfs.Backend) {
	t.Helper()
	if args["base_dir"] == nil {
		args["base_dir"] = t.TempDir()
	}
	b, err := rawfs.Open(args)
	if err != nil {
		t.Fatal(err)
	}
	r := region.New()
	if err := r.ConfigureBackend(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, b
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func ino(t *testing.T, fi os.FileInfo) uint64 {
	t.Helper()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no inode numbers here")
	}
	return uint64(st.Ino)
}

func readAll(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGetOrCreateFileMovesTempFile(t *testing.T) {
	r, _ := openRegion(t, backends.Args{})
	want := content(1<<20, 1)
	var createdPath string
	var createdIno uint64
	creations := 0
	create := func(ctx context.Context) (*os.File, error) {
		creations++
		f, err := r.CreateTemp("value-*")
		if err != nil {
			return nil, err
		}
		f.Write(want)
		createdPath = f.Name()
		fi, _ := f.Stat()
		createdIno = ino(t, fi)
		return f, nil
	}
	f, err := region.GetOrCreateFile(ctx, r, "k", create, region.MoveFile())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("moved file's bytes differ")
	}
	fi, _ := f.Stat()
	if ino(t, fi) != createdIno {
		t.Fatal("the file was copied, not renamed")
	}
	if _, err := os.Stat(createdPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("creator's temp file still at its path after a move")
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("the returned file is writable")
	}
	// A hit hands back the same bytes without creating.
	f2, err := region.GetOrCreateFile(ctx, r, "k", create)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if got := readAll(t, f2); !bytes.Equal(got, want) || creations != 1 {
		t.Fatalf("hit: %d creations", creations)
	}
}

func TestGetOrCreateFileCopiesWithoutMove(t *testing.T) {
	for _, tc := range []struct {
		name string
		args backends.Args
		opts []region.CallOption
	}{
		{"no MoveFile", backends.Args{}, nil},
		{"file_movable=false", backends.Args{"file_movable": false}, []region.CallOption{region.MoveFile()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := openRegion(t, tc.args)
			src := filepath.Join(t.TempDir(), "src")
			want := content(3<<20+5, 2)
			os.WriteFile(src, want, 0o644)
			f, err := region.GetOrCreateFile(ctx, r, "k", func(ctx context.Context) (*os.File, error) {
				f, err := os.Open(src)
				if err == nil {
					f.Seek(12345, io.SeekStart) // it is read from offset 0 anyway
				}
				return f, err
			}, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := readAll(t, f); !bytes.Equal(got, want) {
				t.Fatal("copied bytes differ")
			}
			if b, err := os.ReadFile(src); err != nil || !bytes.Equal(b, want) {
				t.Fatal("the creator's file was taken or changed")
			}
			fi, _ := f.Stat()
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("cached file mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

func TestMoveAcrossFilesystemsCopies(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o700)
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).Run(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	base := t.TempDir() // a different filesystem from the new tmpfs
	var st1, st2 syscall.Stat_t
	syscall.Stat(mnt, &st1)
	syscall.Stat(base, &st2)
	if st1.Dev == st2.Dev {
		t.Skip("could not get two filesystems")
	}
	r, _ := openRegion(t, backends.Args{"base_dir": base})
	want := content(1<<20, 3)
	src := filepath.Join(mnt, "src")
	os.WriteFile(src, want, 0o600)
	f, err := region.GetOrCreateFile(ctx, r, "k", func(ctx context.Context) (*os.File, error) { return os.Open(src) }, region.MoveFile())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("bytes differ after a cross-device move")
	}
}

func TestReplacedFileStaysReadableByHolder(t *testing.T) {
	_, b := openRegion(t, backends.Args{})
	old := content(100000, 4)
	b.Set(ctx, "k", backends.Entry{Payload: old})
	f, _, err := b.OpenFile(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b.Set(ctx, "k", backends.Entry{Payload: content(5, 5)})
	if got := readAll(t, f); !bytes.Equal(got, old) {
		t.Fatal("a reader of the replaced file lost its bytes")
	}
	// The old data file is gone from the directory: no leak.
	n := 0
	filepath.WalkDir(b.Store().Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && filepath.Ext(p) == ".data" {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d data files, want 1", n)
	}
}

func TestConcurrentReplaceKeepsDataAndMetadataTogether(t *testing.T) {
	_, b := openRegion(t, backends.Args{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq := w*100000 + i
				p := content(1000+seq%5000, byte(seq))
				if err := b.Set(ctx, "k", backends.Entry{Payload: p, Tags: []string{fmt.Sprint(seq)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	hits := 0
	for range 2000 {
		f, e, err := b.OpenFile(ctx, "k")
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, f)
		f.Close()
		var seq int
		fmt.Sscan(e.Tags[0], &seq)
		if !bytes.Equal(got, content(1000+seq%5000, byte(seq))) {
			t.Fatalf("data of one write with the metadata of write %d", seq)
		}
		hits++
	}
	close(stop)
	wg.Wait()
	if hits == 0 {
		t.Fatal("no reads hit")
	}
}

func TestDamagedEntriesAreMisses(t *testing.T) {
	for name, f := range map[string]func(meta, data string){
		"data removed":   func(meta, data string) { os.Remove(data) },
		"data truncated": func(meta, data string) { os.Truncate(data, 10) },
		"data appended":  func(meta, data string) { os.WriteFile(data, content(20000, 1), 0o600) },
		"meta garbage":   func(meta, data string) { os.WriteFile(meta, []byte("garbage"), 0o600) },
		"meta truncated": func(meta, data string) { b, _ := os.ReadFile(meta); os.WriteFile(meta, b[:len(b)-1], 0o600) },
		"data symlink": func(meta, data string) {
			os.Remove(data)
			os.Symlink("/etc/passwd", data)
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, b := openRegion(t, backends.Args{})
			b.Set(ctx, "k", backends.Entry{Payload: content(10000, 9)})
			n := fsstore.Name("k")
			meta := filepath.Join(b.Store().Dir(), n[:2], n)
			matches, _ := filepath.Glob(meta + ".*.data")
			if len(matches) != 1 {
				t.Fatalf("data files: %v", matches)
			}
			f(meta, matches[0])
			if _, _, err := b.OpenFile(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("OpenFile: %v, want ErrNotFound", err)
			}
			if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("Get: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestCacheSizeCountsDataFiles(t *testing.T) {
	_, b := openRegion(t, backends.Args{"cache_size": 500 << 10})
	for i := range 30 {
		if err := b.Set(ctx, fmt.Sprint(i), backends.Entry{Payload: content(100<<10, byte(i))}); err != nil {
			t.Fatal(err)
		}
	}
	dataBytes := func() int64 {
		var data int64
		filepath.WalkDir(b.Store().Dir(), func(p string, d os.DirEntry, err error) error {
			if err == nil && filepath.Ext(p) == ".data" {
				fi, _ := d.Info()
				data += fi.Size()
			}
			return nil
		})
		return data
	}
	// Eviction runs in the background: the directory comes back under
	// cache_size once it has run.
	data := dataBytes()
	for deadline := time.Now().Add(10 * time.Second); data > 500<<10 && time.Now().Before(deadline); data = dataBytes() {
		time.Sleep(time.Millisecond)
	}
	if data > 500<<10 || data < 200<<10 {
		t.Fatalf("%d bytes of data files with cache_size 500KiB", data)
	}
}

func TestOrphanDataFilesAreSwept(t *testing.T) {
	dir := t.TempDir()
	_, b := openRegion(t, backends.Args{"base_dir": dir})
	b.Set(ctx, "k", backends.Entry{Payload: []byte("v")})
	n := fsstore.Name("k")
	shard := filepath.Join(dir, n[:2])
	orphanOld := filepath.Join(shard, n+".00000000000000aa.data")
	orphanNew := filepath.Join(shard, n+".00000000000000bb.data")
	os.WriteFile(orphanOld, []byte("o"), 0o600)
	os.WriteFile(orphanNew, []byte("o"), 0o600)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(orphanOld, past, past)
	tmp, _ := b.CreateTemp("leftover-*")
	tmp.Close()
	os.Chtimes(tmp.Name(), past, past)
	if filepath.Dir(tmp.Name()) != filepath.Join(dir, fsstore.TempDir) {
		t.Fatalf("CreateTemp made %s, outside base_dir/tmp", tmp.Name())
	}
	b.Close()
	b2, err := rawfs.Open(backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	b2.StorageStats(ctx) // a full scan sweeps too (Open also sweeps in the background)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		_, e1 := os.Stat(orphanOld)
		_, e2 := os.Stat(tmp.Name())
		if errors.Is(e1, os.ErrNotExist) && errors.Is(e2, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("old orphan data file or temp file not swept")
		}
	}
	if _, err := os.Stat(orphanNew); err != nil {
		t.Fatal("a young data file (maybe about to be committed) was swept")
	}
	if e, err := b2.Get(ctx, "k"); err != nil || string(e.Payload) != "v" {
		t.Fatalf("the live entry: %q %v", e.Payload, err)
	}
}

func TestFailedStoreStillReturnsCreatedFile(t *testing.T) {
	r, b := openRegion(t, backends.Args{})
	b.Store().SetWriteHook(func() error { return syscall.ENOSPC })
	want := content(50000, 7)
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, want, 0o600)
	f, err := region.GetOrCreateFile(ctx, r, "k", func(ctx context.Context) (*os.File, error) { return os.Open(src) })
	if err != nil {
		t.Fatalf("GetOrCreateFile with a full disk: %v", err)
	}
	defer f.Close()
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("the creator's bytes were not handed back")
	}
	if st := r.Stats(); st.WriteErrors != 1 {
		t.Fatalf("stats %+v, want 1 write error", st)
	}
	// Nothing half-stored: no data file, no entry.
	if _, _, err := b.OpenFile(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("OpenFile after the failed store: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(b.Store().Dir(), "*", "*"))
	if len(matches) != 0 {
		t.Fatalf("left behind: %v", matches)
	}
}
