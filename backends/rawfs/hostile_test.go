//go:build linux

package rawfs_test

// Regression tests for a rawfs cache directory treated as hostile input
// (issue 10), through region.Open("rawfs", ...), GetOrCreateFile and the
// backend's exported methods.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
	"github.com/regioncache/regioncache/region"
)

func openRawfs(t *testing.T, args backends.Args) (*region.Region, *rawfs.Backend) {
	t.Helper()
	return fsstoretest.OpenRegion[*rawfs.Backend](t, "rawfs", args)
}

// createFile returns a creator that writes want into a file made with the
// region's CreateTemp (so that MoveFile renames it) and counts its runs.
func createFile(r *region.Region, want []byte, runs *int) func(context.Context) (*os.File, error) {
	return func(context.Context) (*os.File, error) {
		*runs++
		f, err := r.CreateTemp("value-*")
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(want); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*", "*.data"))
	return m
}

// Point 3: a rawfs entry whose header claims a 1 TiB payload is damaged, not
// an allocation: List, EvictTag, OpenFile and Get carry on.
func TestHeaderClaimingTerabytePayload(t *testing.T) {
	ctx := context.Background()
	_, b := openRawfs(t, backends.Args{})
	for _, k := range []string{"bad", "good"} {
		if err := b.Set(ctx, k, backends.Entry{Payload: []byte("value of " + k), Tags: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	n := fsstore.Name("bad")
	p := filepath.Join(b.Store().Dir(), n[:2], n)
	data, _ := os.ReadFile(p)
	binary.LittleEndian.PutUint64(data[32:], 1<<40)
	os.WriteFile(p, data, 0o600)
	var keys []string
	if err := b.List(ctx, func(e backends.EntryInfo) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "good" {
		t.Fatalf("List: %q, want only the good entry", keys)
	}
	if _, _, err := b.OpenFile(ctx, "bad"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("OpenFile of the damaged entry: %v", err)
	}
	if n, err := b.EvictTag(ctx, "t"); err != nil || n != 1 {
		t.Fatalf("EvictTag: %d, %v", n, err)
	}
}

// Point 4: the caller of a creation gets the creator's bytes even when the
// value is larger than cache_size, so eviction removes it at once, moved or
// copied.
func TestValueLargerThanCacheSize(t *testing.T) {
	for _, move := range []bool{true, false} {
		r, _ := openRawfs(t, backends.Args{"cache_size": 4096})
		want := content(256<<10, 3)
		var opts []region.CallOption
		if move {
			opts = append(opts, region.MoveFile())
		}
		for i := range 20 {
			runs := 0
			f, err := region.GetOrCreateFile(context.Background(), r, "big"+string(rune('a'+i)), createFile(r, want, &runs), opts...)
			if err != nil {
				t.Fatalf("move=%v, call %d: %v", move, i, err)
			}
			got := readAll(t, f)
			f.Close()
			if !bytes.Equal(got, want) {
				t.Fatalf("move=%v, call %d: %d bytes, not the creator's", move, i, len(got))
			}
		}
	}
}

// Point 5: a data file rewritten behind the cache's back with content of the
// same length (and its mtime put back) is a miss, never different bytes.
func TestSameLengthOverwriteIsAMiss(t *testing.T) {
	r, b := openRawfs(t, backends.Args{})
	want := content(10000, 1)
	runs := 0
	f, err := region.GetOrCreateFile(context.Background(), r, "k", createFile(r, want, &runs), region.MoveFile())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := dataFiles(t, b.Store().Dir())
	if len(d) != 1 {
		t.Fatalf("data files: %v", d)
	}
	fi, _ := os.Stat(d[0])
	evil := bytes.Repeat([]byte("E"), len(want))
	if err := os.WriteFile(d[0], evil, 0o600); err != nil { // same inode, same length
		t.Fatal(err)
	}
	os.Chtimes(d[0], fi.ModTime(), fi.ModTime())
	f, err = region.GetOrCreateFile(context.Background(), r, "k", createFile(r, want, &runs), region.MoveFile())
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, f)
	f.Close()
	if !bytes.Equal(got, want) || runs != 2 {
		t.Fatalf("after a same-length overwrite: creator's bytes %v, %d creations (want the creator's bytes from a second creation)", bytes.Equal(got, want), runs)
	}
}

// Point 11: a full disk after the creator's file was moved in from
// base_dir/tmp: the value is returned and its Name() still exists.
func TestFullDiskAfterMoveKeepsReturnedFilesName(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o700)
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).Run(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	r, _ := openRawfs(t, backends.Args{"base_dir": mnt})
	want := content(256<<10, 9)
	f, err := region.GetOrCreateFile(context.Background(), r, "k", func(context.Context) (*os.File, error) {
		f, err := r.CreateTemp("value-*")
		if err != nil {
			return nil, err
		}
		f.Write(want)
		// Fill the disk: the data file can be renamed in, but no entry
		// can be written after it.
		filler, _ := os.Create(filepath.Join(mnt, "filler"))
		filler.Write(make([]byte, 4<<20))
		filler.Close()
		return f, nil
	}, region.MoveFile())
	if err != nil {
		t.Fatalf("GetOrCreateFile on a full disk: %v", err)
	}
	defer f.Close()
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("not the creator's bytes")
	}
	b, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("the returned file's Name() %s: %v", f.Name(), err)
	}
	if st := r.Stats(); st.WriteErrors != 1 {
		t.Fatalf("stats %+v, want 1 write error", st)
	}
}

// Point 1 (rawfs): with base_dir/tmp a symlink, CreateTemp never creates
// files behind it, and nothing behind it is swept.
func TestCreateTempNeverFollowsSymlinkedTmp(t *testing.T) {
	dir, sentinel, old := fsstoretest.SymlinkedTmp(t)
	r, _ := openRawfs(t, backends.Args{"base_dir": dir})
	f, err := r.CreateTemp("x-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if strings.HasPrefix(f.Name(), sentinel) {
		t.Fatalf("CreateTemp made %s behind the symlink", f.Name())
	}
	r.Close()
	if ents, _ := os.ReadDir(sentinel); len(ents) != 1 {
		t.Fatalf("the symlink's target holds %d files, want the 1 it had", len(ents))
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal(err)
	}
}

// Point 4: the caller of a creation gets the creator's bytes from a handle
// held across the store, never from a re-open that another writer (or
// eviction) can get to first: here a writer of the same key that strikes
// as soon as the entry appears.
func TestCreatorsBytesNotReopened(t *testing.T) {
	r, b := openRawfs(t, backends.Args{})
	want := content(64<<10, 5)
	other := backends.Entry{Payload: bytes.Repeat([]byte("O"), 64<<10)}
	var cur atomic.Pointer[string]
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := cur.Load()
			if k == nil {
				continue
			}
			n := fsstore.Name(*k)
			if _, err := os.Lstat(filepath.Join(b.Store().Dir(), n[:2], n)); err == nil {
				b.Set(context.Background(), *k, other)
				cur.CompareAndSwap(k, nil)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	wrong := 0
	for i := range 1000 {
		k := fmt.Sprint("k", i)
		cur.Store(&k)
		runs := 0
		f, err := region.GetOrCreateFile(context.Background(), r, k, createFile(r, want, &runs))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f); !bytes.Equal(got, want) {
			wrong++
		}
		f.Close()
	}
	if wrong > 0 {
		t.Fatalf("%d of 1000 creations handed their caller another writer's bytes", wrong)
	}
}
