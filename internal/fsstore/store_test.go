//go:build unix

package fsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

func open(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Kind == 0 {
		o.Kind = KindValue
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entryPath(s *Store, key string) string {
	n := Name(key)
	return filepath.Join(s.Dir(), n[:2], n)
}

var ctx = context.Background()

func TestRoundTripAndFormat(t *testing.T) {
	s := open(t, Options{})
	created := time.Unix(1700000000, 123456789)
	e := backends.Entry{Created: created, Version: -7, Tags: []string{"a", "", "b\x00c"}}
	if err := s.Put(ctx, "k", e, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Payload) != "payload" || !got.Created.Equal(created) || got.Version != -7 || len(got.Tags) != 3 || got.Tags[2] != "b\x00c" {
		t.Fatalf("got %+v", got)
	}
	// Zero creation time survives as zero.
	s.Put(ctx, "z", backends.Entry{}, nil)
	if got, err := s.Get(ctx, "z"); err != nil || !got.Created.IsZero() || len(got.Payload) != 0 {
		t.Fatalf("zero entry: %+v %v", got, err)
	}
	fi, err := os.Stat(entryPath(s, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("entry mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(entryPath(s, "k")))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("shard mode %v, want 0700", di.Mode().Perm())
	}
	// A large payload takes the three-write path.
	big := bytes.Repeat([]byte{1, 2, 3}, 1<<20)
	if err := s.Put(ctx, "big", backends.Entry{Tags: []string{"t"}}, big); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "big"); err != nil || !bytes.Equal(got.Payload, big) {
		t.Fatalf("big: %v", err)
	}
}

// damage rewrites key's entry file with f applied to its bytes.
func damage(t *testing.T, s *Store, key string, f func([]byte) []byte) {
	t.Helper()
	p := entryPath(s, key)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedEntriesAreMissesAndDeleted(t *testing.T) {
	cases := map[string]func([]byte) []byte{
		"empty":         func(b []byte) []byte { return nil },
		"random bytes":  func(b []byte) []byte { r := make([]byte, len(b)); rand.NewChaCha8([32]byte{1}).Read(r); return r },
		"truncated":     func(b []byte) []byte { return b[:len(b)-3] },
		"header only":   func(b []byte) []byte { return b[:headerSize] },
		"old version":   func(b []byte) []byte { b[4] = 0; return b },
		"newer version": func(b []byte) []byte { b[4] = 99; return b },
		"other kind":    func(b []byte) []byte { b[5] = KindFile; return b },
		"payload flip":  func(b []byte) []byte { b[len(b)-10] ^= 1; return b },
		"checksum flip": func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"appended":      func(b []byte) []byte { return append(b, 0) },
		"huge lengths":  func(b []byte) []byte { copy(b[24:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); return b },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			s := open(t, Options{})
			if err := s.Put(ctx, "k", backends.Entry{Tags: []string{"x"}}, []byte("some payload bytes")); err != nil {
				t.Fatal(err)
			}
			damage(t, s, "k", f)
			if _, err := s.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("Get of a damaged entry: %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(entryPath(s, "k")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("damaged entry not deleted: %v", err)
			}
			// And it regenerates.
			if err := s.Put(ctx, "k", backends.Entry{}, []byte("new")); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, "k"); err != nil || string(got.Payload) != "new" {
				t.Fatalf("after regenerating: %q %v", got.Payload, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	e := backends.Entry{Created: time.Unix(1, 2), Version: 3, Tags: []string{"t1", "t2"}}
	f.Add(Encode(KindValue, "key", &e, []byte("payload")))
	f.Add(Encode(KindFile, "key", &e, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b, KindValue, "key")
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to exactly the same bytes.
		if re := Encode(KindValue, "key", &got, got.Payload); !bytes.Equal(re, b) {
			t.Fatalf("decoded %+v does not re-encode to the input", got)
		}
	})
}

func TestPlantedFilesAreNeverFollowed(t *testing.T) {
	s := open(t, Options{})
	s.Put(ctx, "k", backends.Entry{}, []byte("v"))
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, Encode(KindValue, "k", &backends.Entry{}, []byte("planted")), 0o600)
	p := entryPath(s, "k")
	os.Remove(p)
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get through a planted symlink: %q %v", got.Payload, err)
	}
	// A write replaces the link itself, not its target.
	if err := s.Put(ctx, "k", backends.Entry{}, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); !bytes.Contains(b, []byte("planted")) {
		t.Fatal("write went through the planted symlink")
	}
	// A FIFO in place of an entry does not block the reader.
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err == nil {
		if _, err := s.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Get of a FIFO: %v", err)
		}
	}
	// A symlinked shard directory is never followed: the link is replaced
	// by a directory of the cache's own, and its target is left alone.
	s2 := open(t, Options{})
	n := Name("x")
	target := t.TempDir()
	os.Symlink(target, filepath.Join(s2.Dir(), n[:2]))
	if err := s2.Put(ctx, "x", backends.Entry{}, []byte("v")); err != nil {
		t.Fatalf("Put where a symlinked shard was: %v", err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Fatalf("a write went through a symlinked shard: %d files in its target", len(ents))
	}
	if fi, err := os.Lstat(filepath.Join(s2.Dir(), n[:2])); err != nil || !fi.IsDir() {
		t.Fatalf("shard not replaced by a directory: %v %v", fi, err)
	}
}

func TestStorageTTLDeletesExpired(t *testing.T) {
	s := open(t, Options{TTL: time.Minute})
	s.Put(ctx, "old", backends.Entry{Created: time.Now().Add(-2 * time.Minute)}, []byte("v"))
	s.Put(ctx, "new", backends.Entry{Created: time.Now()}, []byte("v"))
	if _, err := s.Get(ctx, "old"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := os.Stat(entryPath(s, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("expired entry not deleted")
	}
	if _, err := s.Get(ctx, "new"); err != nil {
		t.Fatal(err)
	}
}

func TestDeadWritersTempFilesAreSwept(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	s.Put(ctx, "k", backends.Entry{}, []byte("v"))
	shard := filepath.Dir(entryPath(s, "k"))
	s.Close()
	dead, live := filepath.Join(shard, ".tmp-dead"), filepath.Join(shard, ".tmp-live")
	os.WriteFile(dead, []byte("x"), 0o600)
	os.WriteFile(live, []byte("x"), 0o600)
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !lockFile(f) { // a live writer holds its file's flock
		t.Fatal("flock")
	}
	time.Sleep(20 * time.Millisecond)
	s2 := open(t, Options{Dir: dir, SweepAge: 10 * time.Millisecond})
	defer s2.Close()
	// Open sweeps in the background.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(dead); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dead writer's temp file not swept")
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatal("live writer's temp file was swept")
	}
}

// settle waits for background eviction to finish.
func settle(s *Store) {
	for s.evicting.Load() {
		time.Sleep(time.Millisecond)
	}
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	s := open(t, Options{})
	s.Put(ctx, "k", backends.Entry{}, []byte("old"))
	s.SetWriteHook(func() error { return syscall.ENOSPC })
	if err := s.Put(ctx, "k", backends.Entry{}, []byte("new")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put with a full disk: %v", err)
	}
	s.SetWriteHook(nil)
	if got, err := s.Get(ctx, "k"); err != nil || string(got.Payload) != "old" {
		t.Fatalf("old entry after a failed write: %q %v", got.Payload, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(entryPath(s, "k")))
	if len(ents) != 1 {
		t.Fatalf("shard holds %d files after a failed write, want 1", len(ents))
	}
}

func TestEvictionBoundAndApproximateLRU(t *testing.T) {
	const size = 1000
	s := open(t, Options{MaxBytes: 100 * (size + 100), TouchInterval: time.Nanosecond, LowWater: 0.9})
	p := make([]byte, size)
	for i := range 60 {
		s.Put(ctx, fmt.Sprint(i), backends.Entry{}, p)
	}
	// Read the first ten: reads count as use.
	time.Sleep(10 * time.Millisecond)
	for i := range 10 {
		if _, err := s.Get(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 60; i < 300; i++ {
		s.Put(ctx, fmt.Sprint(i), backends.Entry{}, p)
		if i%20 == 0 {
			for j := range 10 {
				s.Get(ctx, fmt.Sprint(j))
			}
		}
		settle(s)
		if b, _ := s.Counter(); b > s.o.MaxBytes {
			t.Fatalf("after write %d: %d bytes > bound %d", i, b, s.o.MaxBytes)
		}
	}
	st, _ := s.Stats(ctx)
	if st.Bytes > s.o.MaxBytes {
		t.Fatalf("%d bytes on disk > bound %d", st.Bytes, s.o.MaxBytes)
	}
	kept := 0
	for j := range 10 {
		if _, err := s.Get(ctx, fmt.Sprint(j)); err == nil {
			kept++
		}
	}
	if kept < 8 {
		t.Fatalf("only %d of 10 frequently read entries survived eviction", kept)
	}
	if _, err := s.Get(ctx, "60"); err == nil {
		t.Fatal("an old entry never read survived 240 newer writes in a 100-entry cache")
	}
}

func TestEvictionKeepsEntryWrittenAfterSelection(t *testing.T) {
	s := open(t, Options{MaxBytes: 20 * 200})
	keys := map[string]string{}
	for i := range 19 {
		k := fmt.Sprint(i)
		keys[Name(k)] = k
		s.Put(ctx, k, backends.Entry{}, make([]byte, 150))
	}
	rewritten := 0
	other := open(t, Options{Dir: s.Dir()}) // another process, with no cache_size
	s.afterSelect = func(c []candidate) {
		s.afterSelect = nil
		// Between the choice of victims and their deletion, every
		// candidate is written again by the other process.
		for _, x := range c {
			if k, ok := keys[x.name]; ok {
				if err := other.Put(ctx, k, backends.Entry{}, []byte("fresh "+k)); err != nil {
					t.Error(err)
				}
				rewritten++
			}
		}
	}
	s.Put(ctx, "trigger", backends.Entry{}, make([]byte, 1000))
	settle(s)
	if rewritten == 0 {
		t.Fatal("eviction did not run")
	}
	for _, k := range keys {
		got, err := s.Get(ctx, k)
		if err != nil || string(got.Payload) != "fresh "+k {
			t.Fatalf("entry %s written after victim selection: %q %v", k, got.Payload, err)
		}
	}
}

func TestCounterIsRebuiltWhenMissing(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	for i := range 5 {
		s.Put(ctx, fmt.Sprint(i), backends.Entry{}, []byte("abc"))
	}
	b0, n0 := s.Counter()
	s.Close()
	os.Remove(filepath.Join(dir, SizeFile))
	s2 := open(t, Options{Dir: dir})
	if b, n := s2.Counter(); b != b0 || n != n0 || n != 5 {
		t.Fatalf("rebuilt counter %d/%d, want %d/%d", b, n, b0, n0)
	}
}

func TestListEvictTagPrune(t *testing.T) {
	s := open(t, Options{})
	now := time.Now()
	s.Put(ctx, "a", backends.Entry{Created: now, Tags: []string{"red"}}, []byte("1"))
	s.Put(ctx, "b", backends.Entry{Created: now, Tags: []string{"red", "blue"}}, []byte("22"))
	s.Put(ctx, "c", backends.Entry{Created: now.Add(-time.Hour)}, []byte("333"))
	seen := map[string]int64{}
	s.List(ctx, func(e EntryInfo) error { seen[e.Key] = e.Size; return nil })
	if len(seen) != 3 || seen["c"] != 3 {
		t.Fatalf("List: %v", seen)
	}
	if n, err := s.EvictTag(ctx, "red"); n != 2 || err != nil {
		t.Fatalf("EvictTag = %d, %v", n, err)
	}
	r, err := s.Prune(ctx, now.Add(-time.Minute), 0, nil)
	if err != nil || r.Expired != 1 {
		t.Fatalf("Prune: %+v %v", r, err)
	}
	if st, _ := s.Stats(ctx); st.Entries != 0 {
		t.Fatalf("%d entries left", st.Entries)
	}
	for i := range 50 {
		s.Put(ctx, fmt.Sprint(i), backends.Entry{}, make([]byte, 100))
	}
	if r, err := s.Prune(ctx, time.Time{}, 2000, nil); err != nil || r.Evicted == 0 {
		t.Fatalf("Prune to size: %+v %v", r, err)
	}
	if st, _ := s.Stats(ctx); st.Bytes > 2000 {
		t.Fatalf("%d bytes after pruning to 2000", st.Bytes)
	}
}

func TestClosed(t *testing.T) {
	s := open(t, Options{})
	s.Close()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, backends.ErrClosed) {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", backends.Entry{}, nil); !errors.Is(err, backends.ErrClosed) {
		t.Fatal(err)
	}
}
