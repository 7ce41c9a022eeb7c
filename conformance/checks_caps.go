package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// checkExpiry opens the backend with a storage TTL through
// Harness.OpenWithTTL: an entry must be there until the TTL has passed and a
// miss (ErrNotFound) once it has.
func checkExpiry(ctx context.Context, e *env) error {
	if e.h.OpenWithTTL == nil {
		return skipf("harness has no OpenWithTTL: backend lacks capability storage-expiry")
	}
	ttl := e.cfg.ttl
	b, err := e.h.OpenWithTTL(ctx, e.dir, ttl)
	if err != nil {
		return fmt.Errorf("OpenWithTTL(%v): %w", ttl, err)
	}
	e.track(b)
	if got := backends.StorageTTL(b); got <= 0 {
		return fmt.Errorf("StorageTTL() of an instance opened with a TTL of %v is %v", ttl, got)
	}
	// start is taken before the entry's Created so that a backend judging
	// expiry from Created, from the time of the write or from the end of
	// Set is never seen as expiring early.
	start := time.Now()
	ent := newEntry([]byte("expiring"), 1)
	if err := set(ctx, b, "k", ent); err != nil {
		return err
	}
	got, err := b.Get(ctx, "k")
	switch {
	case errors.Is(err, backends.ErrNotFound):
		if time.Since(start) < ttl {
			return fmt.Errorf("entry expired before its storage TTL of %v had passed", ttl)
		}
		return skipf("the machine is too slow to read an entry back within the TTL of %v; raise it with ExpiryTTL", ttl)
	case err != nil:
		return fmt.Errorf("Get: %w", err)
	}
	if err := e.sameEntry(got, ent); err != nil {
		return err
	}
	// A second and a third entry, stored by SetMulti, expire alike.
	if err := backends.SetMulti(ctx, b, []string{"k2", "k3"}, []backends.Entry{newEntry([]byte("two"), 2, "t"), newEntry(nil, 3)}); err != nil {
		return fmt.Errorf("SetMulti: %w", err)
	}
	deadline := start.Add(ttl + e.cfg.patience)
	step := max(ttl/10, 10*time.Millisecond)
	for {
		_, err := b.Get(ctx, "k")
		if errors.Is(err, backends.ErrNotFound) {
			if time.Since(start) < ttl {
				return fmt.Errorf("entry expired after %v, before its storage TTL of %v had passed", time.Since(start), ttl)
			}
			return e.expiredEverywhere(ctx, b, start, deadline)
		}
		if err != nil {
			return fmt.Errorf("Get while waiting for expiry: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("entry still there %v after it was written with a storage TTL of %v (waited the TTL plus Patience %v)",
				time.Since(start).Round(time.Millisecond), ttl, e.cfg.patience)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
}

func checkTags(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	te, ok := b.(backends.TagEvicter)
	if !ok {
		return errors.New("backend declares tags but does not implement backends.TagEvicter")
	}
	entries := map[string]backends.Entry{
		"a1":    newEntry([]byte("1"), 1, "a"),
		"a2":    newEntry([]byte("2"), 1, "b", "a"),
		"b1":    newEntry([]byte("3"), 1, "b"),
		"none":  newEntry([]byte("4"), 1),
		"bb":    newEntry([]byte("5"), 1, "bb", "b b", "B"),
		"retag": newEntry([]byte("6"), 1, "c"),
	}
	for k, ent := range entries {
		if err := set(ctx, b, k, ent); err != nil {
			return err
		}
	}
	// Overwriting an entry replaces its tags.
	entries["retag"] = newEntry([]byte("7"), 2, "d")
	if err := set(ctx, b, "retag", entries["retag"]); err != nil {
		return err
	}
	evict := func(tag string, want int, gone ...string) error {
		n, err := te.EvictTag(ctx, tag)
		if err != nil {
			return fmt.Errorf("EvictTag(%q): %w", tag, err)
		}
		if n != want {
			return fmt.Errorf("EvictTag(%q) reported %d entries removed, want %d", tag, n, want)
		}
		for _, k := range gone {
			delete(entries, k)
		}
		for _, k := range gone {
			if err := expectMiss(ctx, b, k, fmt.Sprintf("EvictTag(%q) removed it", tag)); err != nil {
				return err
			}
		}
		for k, ent := range entries {
			if err := e.expect(ctx, b, k, ent); err != nil {
				return fmt.Errorf("after EvictTag(%q), an entry without the tag: %w", tag, err)
			}
		}
		return nil
	}
	if err := evict("c", 0); err != nil {
		return fmt.Errorf("%w (the tag was replaced by an overwrite)", err)
	}
	if err := evict("a", 2, "a1", "a2"); err != nil {
		return err
	}
	if err := evict("a", 0); err != nil {
		return err
	}
	if err := evict("no-such-tag", 0); err != nil {
		return err
	}
	if err := evict("b", 1, "b1"); err != nil {
		return err
	}
	if err := evict("d", 1, "retag"); err != nil {
		return err
	}
	// Deleted entries are not counted.
	if err := del(ctx, b, "bb"); err != nil {
		return err
	}
	delete(entries, "bb")
	return evict("bb", 0)
}

type listed struct {
	key string
	ent backends.Entry
}

func listEntries() []listed {
	keys := []string{"one", "two/../three", "a\x00b", "Case", "case", strings.Repeat("L", 10<<10), "", "é"}
	out := make([]listed, len(keys))
	for i, k := range keys {
		out[i] = listed{k, newEntry(pattern(uint64(i), i*1000), i, fmt.Sprintf("t%d", i%3))}
	}
	return out
}

func checkList(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	l, ok := b.(backends.Lister)
	if !ok {
		return errors.New("backend declares list but does not implement backends.Lister")
	}
	ents := listEntries()
	for _, le := range ents {
		if err := set(ctx, b, le.key, le.ent); err != nil {
			return err
		}
	}
	// Overwrite one, delete one.
	ents[0].ent = newEntry([]byte("overwritten"), 99, "new")
	if err := set(ctx, b, ents[0].key, ents[0].ent); err != nil {
		return err
	}
	if err := del(ctx, b, ents[1].key); err != nil {
		return err
	}
	ents = slices.Delete(ents, 1, 2)
	if e.discards() {
		ents = nil
	}
	want := map[string]backends.Entry{}
	for _, le := range ents {
		want[le.key] = le.ent
	}
	seen := map[string]int{}
	err = l.List(ctx, func(in backends.EntryInfo) error {
		seen[in.Key]++
		w, ok := want[in.Key]
		if !ok {
			return fmt.Errorf("listing returned key %s, which is not stored", qkey(in.Key))
		}
		if in.Size != int64(len(w.Payload)) {
			return fmt.Errorf("listing: key %s has Size %d, want %d (the payload's length)", qkey(in.Key), in.Size, len(w.Payload))
		}
		if err := e.sameEntry(backends.Entry{Payload: w.Payload, Created: in.Created, Version: in.Version, Tags: in.Tags, Value: w.Value}, w); err != nil {
			return fmt.Errorf("listing: key %s: %w", qkey(in.Key), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var missing, dup []string
	for k := range want {
		switch seen[k] {
		case 0:
			missing = append(missing, qkey(k))
		case 1:
		default:
			dup = append(dup, qkey(k))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Errorf("listing did not return the stored keys %s", strings.Join(missing, ", "))
	}
	if len(dup) > 0 {
		return fmt.Errorf("listing returned keys %s more than once", strings.Join(dup, ", "))
	}
	// An error from fn stops the listing and is returned.
	if len(want) > 1 {
		stop := errors.New("stop here")
		calls := 0
		err := l.List(ctx, func(backends.EntryInfo) error { calls++; return stop })
		if !errors.Is(err, stop) {
			return fmt.Errorf("listing returned %v when fn returned an error, want that error", err)
		}
		if calls != 1 {
			return fmt.Errorf("listing called fn %d more times after fn returned an error", calls-1)
		}
	}
	return nil
}

func checkStats(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	sr, ok := b.(backends.StatReporter)
	if !ok {
		return errors.New("backend declares list but does not implement backends.StatReporter")
	}
	expect := func(when string, entries, minBytes int64) error {
		s, err := sr.StorageStats(ctx)
		if err != nil {
			return fmt.Errorf("StorageStats %s: %w", when, err)
		}
		if e.discards() {
			entries, minBytes = 0, 0
		}
		if s.Entries != entries {
			return fmt.Errorf("StorageStats %s: Entries = %d, want %d", when, s.Entries, entries)
		}
		if s.Bytes < minBytes || s.Bytes < 0 {
			return fmt.Errorf("StorageStats %s: Bytes = %d, want at least %d (the payloads stored)", when, s.Bytes, minBytes)
		}
		return nil
	}
	if err := expect("of a fresh instance", 0, 0); err != nil {
		return err
	}
	ents := listEntries()
	var total int64
	for _, le := range ents {
		if err := set(ctx, b, le.key, le.ent); err != nil {
			return err
		}
		total += int64(len(le.ent.Payload))
	}
	if err := expect(fmt.Sprintf("after storing %d entries", len(ents)), int64(len(ents)), total); err != nil {
		return err
	}
	// Overwriting does not add an entry.
	if err := set(ctx, b, ents[0].key, ents[0].ent); err != nil {
		return err
	}
	if err := expect("after an overwrite", int64(len(ents)), total); err != nil {
		return err
	}
	for _, le := range ents[:3] {
		if err := del(ctx, b, le.key); err != nil {
			return err
		}
		total -= int64(len(le.ent.Payload))
	}
	return expect("after deleting 3 entries", int64(len(ents)-3), total)
}

// checkFiles stores files through backends.FileStore and reads them back
// with OpenFile, byte for byte.
func checkFiles(ctx context.Context, e *env, move bool) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	fs, ok := b.(backends.FileStore)
	if !ok {
		return errors.New("backend declares files but does not implement backends.FileStore")
	}
	if f, _, err := fs.OpenFile(ctx, "absent"); !errors.Is(err, backends.ErrNotFound) {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("OpenFile of an absent key returned %v, want an error wrapping backends.ErrNotFound", err)
	}
	mode := "copy"
	if move {
		mode = "move"
	}
	sizes := []int{3<<20 + 17, 0, 4096, 1}
	for i, n := range sizes {
		content := pattern(uint64(1000+i), n)
		ent := newEntry(nil, i+1, "file", mode)
		f, err := e.tempFile(b, move)
		if err != nil {
			return err
		}
		path := f.Name()
		if _, err := f.Write(content); err != nil {
			f.Close()
			return err
		}
		// The offset is left at the end: StoreFile reads from offset 0.
		err = fs.StoreFile(ctx, "file", f, ent, move)
		if err != nil {
			f.Close()
			return fmt.Errorf("StoreFile(%d bytes, move=%v): %w", n, move, err)
		}
		if !move {
			// The caller's file is untouched and still open.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return fmt.Errorf("the file passed to StoreFile(move=false) is no longer usable: %w", err)
			}
			got, err := io.ReadAll(f)
			if err != nil {
				f.Close()
				return fmt.Errorf("the file passed to StoreFile(move=false) is no longer readable: %w", err)
			}
			if d := diffBytes(got, content); d != "" {
				f.Close()
				return fmt.Errorf("StoreFile(move=false) changed the caller's file: %s", d)
			}
			// The caller may reuse its file at once: the stored copy must
			// not change with it.
			_, werr := f.WriteAt(pattern(uint64(2000+i), n+10), 0)
			f.Close()
			if werr != nil {
				return fmt.Errorf("the file passed to StoreFile(move=false) is no longer writable: %w", werr)
			}
			if err := e.expectFile(ctx, fs, "file", content, ent); err != nil {
				return fmt.Errorf("after the caller wrote to the file it had passed to StoreFile(move=false): %w (store a copy, never a link to or a view of the caller's file)", err)
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("StoreFile(move=false) took the caller's file: %w", err)
			}
		} else {
			f.Close()
			_ = os.Remove(path) // if the backend copied instead of moving
		}
		if err := e.expectFile(ctx, fs, "file", content, ent); err != nil {
			return fmt.Errorf("after StoreFile of %d bytes (move=%v): %w", n, move, err)
		}
	}
	return nil
}

// tempFile creates a file for StoreFile: on the backend's own filesystem
// when it is a TempFiler and the file is to be moved, else in scratch.
func (e *env) tempFile(b backends.Backend, move bool) (*os.File, error) {
	if tf, ok := b.(backends.TempFiler); ok && move {
		f, err := tf.CreateTemp("suite-*")
		if err != nil {
			return nil, fmt.Errorf("CreateTemp: %w", err)
		}
		return f, nil
	}
	return os.CreateTemp(e.scratch, "suite-*")
}

func (e *env) expectFile(ctx context.Context, fs backends.FileStore, key string, content []byte, want backends.Entry) error {
	f, meta, err := fs.OpenFile(ctx, key)
	if e.discards() {
		if f != nil {
			f.Close()
		}
		if !errors.Is(err, backends.ErrNotFound) {
			return fmt.Errorf("OpenFile(%s) = %v, want a miss from a backend that declares discards", qkey(key), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("OpenFile(%s): %w", qkey(key), err)
	}
	if f == nil {
		return fmt.Errorf("OpenFile(%s) returned a nil file and no error", qkey(key))
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("reading the file OpenFile returned: %w", err)
	}
	if d := diffBytes(got, content); d != "" {
		return fmt.Errorf("OpenFile(%s): file content: %s", qkey(key), d)
	}
	meta.Payload = nil
	want.Payload = nil
	if err := e.sameEntry(meta, want); err != nil {
		return fmt.Errorf("OpenFile(%s) metadata: %w", qkey(key), err)
	}
	return nil
}

// expiredEverywhere waits (until deadline) for the SetMulti entries of the
// expiry check to expire too, then requires every read path to agree that
// nothing is left.
func (e *env) expiredEverywhere(ctx context.Context, b backends.Backend, start, deadline time.Time) error {
	saved := e.caps
	e.caps = featuresOf(ctx, b) // the instance with a TTL may have more
	defer func() { e.caps = saved }()
	r := newReadPaths(e, b)
	for _, k := range []string{"k", "k2", "k3"} {
		r.use(k)
		for {
			_, err := b.Get(ctx, k)
			if errors.Is(err, backends.ErrNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("Get(%s) while waiting for expiry: %w", qkey(k), err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("Get(%s) still finds the entry stored by SetMulti %v after it was written with a storage TTL of %v", qkey(k), time.Since(start).Round(time.Millisecond), e.cfg.ttl)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(max(e.cfg.ttl/10, 10*time.Millisecond)):
			}
		}
	}
	return r.verify(ctx, "the storage TTL retired every entry")
}
