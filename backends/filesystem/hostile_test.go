//go:build linux

package filesystem_test

// Regression tests for a cache directory treated as hostile input (issue 10),
// through the public API: region.Open("filesystem", ...) and the backend's
// exported methods. Each names the point of the issue it covers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/filesystem"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

func openFS(t *testing.T, args backends.Args, opts ...region.Option) (*region.Region, *filesystem.Backend) {
	t.Helper()
	return fsstoretest.OpenRegion[*filesystem.Backend](t, "filesystem", args, opts...)
}

func entryFile(b *filesystem.Backend, key string) string {
	n := fsstore.Name(key)
	return filepath.Join(b.Store().Dir(), n[:2], n)
}

// getOrCreate runs GetOrCreate and counts creator runs.
func getOrCreate(t *testing.T, r *region.Region, key, val string, runs *int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := region.GetOrCreate(ctx, r, key, func(context.Context) (string, error) { *runs++; return val, nil })
	if err != nil {
		t.Fatalf("GetOrCreate(%q): %v", key, err)
	}
	return v
}

// Point 1: a symlinked base_dir/tmp is never followed: the regular files of
// the directory it points to survive Open and the sweeps, however old.
func TestSymlinkedTmpDirIsNeverSwept(t *testing.T) {
	dir, _, old := fsstoretest.SymlinkedTmp(t)
	for _, name := range []string{"filesystem", "rawfs"} {
		r, err := region.Open(name, backends.Args{"base_dir": dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := region.Set(context.Background(), r, "k", "v"); err != nil {
			t.Fatal(err)
		}
		r.Close() // waits for the sweep Open started
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != fsstoretest.Precious {
		t.Fatalf("a file outside the cache, behind a symlinked tmp/, was touched: %q %v", b, err)
	}
}

// Point 3: an entry grown to a sparse terabyte is a miss, not an allocation
// of its stated size (which killed the process).
func TestSparseTerabyteEntryIsAMiss(t *testing.T) {
	r, b := openFS(t, backends.Args{})
	runs := 0
	getOrCreate(t, r, "k", "v1", &runs)
	if err := os.Truncate(entryFile(b, "k"), 1<<40); err != nil {
		t.Fatal(err)
	}
	if v := getOrCreate(t, r, "k", "v2", &runs); v != "v2" || runs != 2 {
		t.Fatalf("after a 1 TiB truncate: %q, %d creations", v, runs)
	}
	if _, err := b.Get(context.Background(), "k"); err != nil {
		t.Fatalf("the regenerated entry: %v", err)
	}
}

// Point 6: one shard that is not a directory (a file, a link to elsewhere)
// is a miss for its keys, whose creators run; other keys are cached.
func TestDamagedShardAffectsOnlyItself(t *testing.T) {
	for _, plant := range []string{"file", "symlink", "fifo"} {
		t.Run(plant, func(t *testing.T) {
			r, b := openFS(t, backends.Args{})
			outside := t.TempDir()
			n := fsstore.Name("k")
			shard := filepath.Join(b.Store().Dir(), n[:2])
			switch plant {
			case "file":
				os.WriteFile(shard, []byte("not a shard"), 0o600)
			case "symlink":
				os.Symlink(outside, shard)
			case "fifo":
				syscall.Mkfifo(shard, 0o600)
			}
			runs := 0
			if v := getOrCreate(t, r, "k", "v", &runs); v != "v" || runs != 1 {
				t.Fatalf("key in the damaged shard: %q, %d creations", v, runs)
			}
			others := 0
			for i := range 50 {
				k := fmt.Sprint("other-", i)
				if fsstore.Name(k)[:2] == n[:2] {
					continue
				}
				getOrCreate(t, r, k, "x", &others)
				getOrCreate(t, r, k, "x", &others)
			}
			if others > 50 {
				t.Fatalf("other keys were created %d times for 50 keys read twice", others)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("%d files written through a symlinked shard", len(ents))
			}
		})
	}
}

// Point 7: a directory planted where an entry belongs does not make the key
// uncacheable, and a FIFO there does not block the reader.
func TestPlantedDirectoryAndFIFOInEntryPosition(t *testing.T) {
	for _, plant := range []string{"dir", "fifo"} {
		t.Run(plant, func(t *testing.T) {
			r, b := openFS(t, backends.Args{})
			p := entryFile(b, "k")
			os.MkdirAll(filepath.Dir(p), 0o700)
			if plant == "dir" {
				os.Mkdir(p, 0o700)
			} else if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			runs := 0
			getOrCreate(t, r, "k", "v", &runs)
			getOrCreate(t, r, "k", "v", &runs)
			if v := getOrCreate(t, r, "k", "v", &runs); v != "v" || runs != 1 {
				t.Fatalf("with a %s planted as the entry: %q, %d creations for 3 calls (want 1: cached)", plant, v, runs)
			}
		})
	}
}

// Point 7: a hard link planted as an entry (even a valid one) is never
// served and the outside file is not touched: its contents and its mtime
// stay as they were.
func TestPlantedHardLinkIsNotServedOrTouched(t *testing.T) {
	r, b := openFS(t, backends.Args{})
	ctx := context.Background()
	if err := region.Set(ctx, r, "k", "planted"); err != nil {
		t.Fatal(err)
	}
	p := entryFile(b, "k")
	outside := filepath.Join(filepath.Dir(b.Store().Dir()), "outside-"+filepath.Base(b.Store().Dir()))
	if err := os.Rename(p, outside); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(outside) })
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(outside, past, past)
	if err := os.Link(outside, p); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(outside)
	runs := 0
	if v := getOrCreate(t, r, "k", "mine", &runs); v != "mine" || runs != 1 {
		t.Fatalf("with a hard link planted: %q, %d creations", v, runs)
	}
	fi, err := os.Stat(outside)
	if err != nil || !fi.ModTime().Equal(past) {
		t.Fatalf("the outside file's mtime changed: %v (was %v), %v", fi.ModTime(), past, err)
	}
	if after, _ := os.ReadFile(outside); !bytes.Equal(after, before) {
		t.Fatal("the outside file's contents changed")
	}
}

// Point 8: a damaged entry, and an expired one, whose access mark is old are
// misses and are deleted.
func TestOldDamagedAndExpiredEntriesAreDeleted(t *testing.T) {
	ctx := context.Background()
	_, b := openFS(t, backends.Args{"expiration_time": "1m"})
	if err := b.Set(ctx, "damaged", backends.Entry{Payload: []byte("payload"), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "expired", backends.Entry{Payload: []byte("payload"), Created: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	p := entryFile(b, "damaged")
	data, _ := os.ReadFile(p)
	data[len(data)-12] ^= 0xff // a payload byte: the checksum no longer matches
	os.WriteFile(p, data, 0o600)
	past := time.Now().Add(-time.Hour)
	for _, k := range []string{"damaged", "expired"} {
		os.Chtimes(entryFile(b, k), past, past)
		if _, err := b.Get(ctx, k); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("%s: Get %v, want a miss", k, err)
		}
		if _, err := os.Lstat(entryFile(b, k)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s entry with an old access mark was not deleted: %v", k, err)
		}
	}
}

// Point 9: StorageStats never loses a size update made while it scans.
func TestStorageStatsKeepsConcurrentSizeUpdates(t *testing.T) {
	ctx := context.Background()
	_, b := openFS(t, backends.Args{})
	const writers, each = 8, 375 // 3000 Puts
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				b.StorageStats(ctx)
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Set(ctx, fmt.Sprint(w, "-", i), backends.Entry{Payload: make([]byte, 100+i%50)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bytes, entries := b.Store().Counter()
	disk, n := entryBytes(t, b.Store().Dir())
	if bytes != disk || entries != n {
		t.Fatalf("size counter %d bytes / %d entries after 3000 Puts during StorageStats; the directory holds %d / %d", bytes, entries, disk, n)
	}
}

// entryBytes sums the entry files under dir by walking it.
func entryBytes(t *testing.T, dir string) (bytes, entries int64) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && len(d.Name()) == 32 {
			fi, _ := d.Info()
			bytes += fi.Size()
			entries++
		}
		return nil
	})
	return bytes, entries
}

// Point 12: a Set on a full cache never waits, uncancellably, for another
// process's eviction: with the eviction lock held elsewhere it returns.
func TestSetDoesNotWaitForAnotherProcesssEviction(t *testing.T) {
	dir := t.TempDir()
	r, _ := openFS(t, backends.Args{"base_dir": dir, "cache_size": 4096})
	// Another process evicting (forever): its eviction lock is held, under
	// the name of this and of earlier releases.
	for _, l := range []struct{ file, key string }{
		{fsstore.StoreLockFile, "evict"},
		{fsstore.LockFile, "\x00regioncache:evict"},
	} {
		fl, err := lock.NewFileLocker(filepath.Join(dir, l.file))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close() })
		if _, err := fl.Lock(context.Background(), l.key); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		for i := range 20 {
			if err = region.Set(ctx, r, fmt.Sprint(i), string(make([]byte, 1000))); err != nil {
				break
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("Set: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Set on a full cache blocked for 20s waiting for another process's eviction")
	}
}

// Point 12: the store's own locks are not in the regions' lock namespace: a
// region lock on any key never blocks the store's entry and size locks.
func TestStoreLocksAreNotInTheRegionsNamespace(t *testing.T) {
	_, b := openFS(t, backends.Args{})
	ctx := context.Background()
	for _, key := range []string{"\x00regioncache:size", "\x00regioncache:entry:" + fsstore.Name("k"), "size", "entry:" + fsstore.Name("k")} {
		h, err := b.Locker().Lock(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.Set(ctx, "k", backends.Entry{Payload: []byte("v")}) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Set blocked by a region lock on %q", key)
		}
		h.Unlock()
	}
}

// Point 14: creation times of any year round-trip exactly.
func TestCreatedTimesOfAnyYearRoundTrip(t *testing.T) {
	_, b := openFS(t, backends.Args{})
	ctx := context.Background()
	for _, tm := range []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1500, 6, 1, 12, 0, 0, 999999999, time.UTC),
		time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC),
		time.Date(2263, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 123456789, time.UTC),
		time.Now(),
	} {
		if err := b.Set(ctx, "t", backends.Entry{Payload: []byte("v"), Created: tm}); err != nil {
			t.Fatal(err)
		}
		e, err := b.Get(ctx, "t")
		if err != nil || !e.Created.Equal(tm) {
			t.Fatalf("created %v came back as %v (%v)", tm, e.Created, err)
		}
	}
}
