package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/regioncache/regioncache/backends"
)

// readPaths follows a model of what a backend must hold through every read
// path the backend has: Get, its own GetMulti, List, StorageStats, OpenFile
// and, through List, tag membership. universe is every key the check ever
// used, so that a key a read path still reports after its deletion is seen.
type readPaths struct {
	e        *env
	b        backends.Backend
	want     map[string]backends.Entry
	universe []string
}

func newReadPaths(e *env, b backends.Backend) *readPaths {
	return &readPaths{e: e, b: b, want: map[string]backends.Entry{}}
}

func (r *readPaths) use(k string) {
	if !slices.Contains(r.universe, k) {
		r.universe = append(r.universe, k)
	}
}

// put records that k now holds ent (nothing, for a backend that discards).
func (r *readPaths) put(k string, ent backends.Entry) {
	r.use(k)
	if !r.e.discards() {
		r.want[k] = ent
	}
}

func (r *readPaths) gone(k string) { r.use(k); delete(r.want, k) }

// verify reads the whole model back through every read path.
func (r *readPaths) verify(ctx context.Context, after string) error {
	if err := r.verifyPaths(ctx); err != nil {
		return fmt.Errorf("after %s: %w", after, err)
	}
	return nil
}

func (r *readPaths) verifyPaths(ctx context.Context) error {
	e, b := r.e, r.b
	for _, k := range r.universe {
		if w, ok := r.want[k]; ok {
			if err := e.expect(ctx, b, k, w); err != nil {
				return err
			}
		} else if err := expectMiss(ctx, b, k, "it was deleted, evicted or never stored"); err != nil {
			return err
		}
	}
	if mg, ok := b.(backends.MultiGetter); ok && e.has(FeatMulti) {
		if err := e.expectMulti(ctx, multiOps{get: mg.GetMulti}, r.universe, r.want); err != nil {
			return fmt.Errorf("the backend's own %w", err)
		}
	}
	if l, ok := b.(backends.Lister); ok && e.has(FeatList) {
		if err := r.verifyList(ctx, l); err != nil {
			return err
		}
	}
	if sr, ok := b.(backends.StatReporter); ok && e.has(FeatStats) {
		s, err := sr.StorageStats(ctx)
		if err != nil {
			return fmt.Errorf("StorageStats: %w", err)
		}
		var total int64
		for _, w := range r.want {
			total += int64(len(w.Payload))
		}
		if s.Entries != int64(len(r.want)) {
			return fmt.Errorf("StorageStats reports %d entries, want %d: the counters do not follow every mutation", s.Entries, len(r.want))
		}
		if s.Bytes < total {
			return fmt.Errorf("StorageStats reports %d bytes, want at least %d (the payloads stored)", s.Bytes, total)
		}
	}
	if fs, ok := b.(backends.FileStore); ok && e.has(FeatFiles) {
		for _, k := range r.universe {
			w, ok := r.want[k]
			if !ok {
				f, _, err := fs.OpenFile(ctx, k)
				if f != nil {
					f.Close()
				}
				if !errors.Is(err, backends.ErrNotFound) {
					return fmt.Errorf("OpenFile(%s) of a key that holds nothing returned %v, want an error wrapping backends.ErrNotFound", qkey(k), err)
				}
				continue
			}
			if err := e.expectFile(ctx, fs, k, w.Payload, w); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *readPaths) verifyList(ctx context.Context, l backends.Lister) error {
	seen := map[string]int{}
	err := l.List(ctx, func(in backends.EntryInfo) error {
		seen[in.Key]++
		w, ok := r.want[in.Key]
		if !ok {
			return fmt.Errorf("listing: List reports key %s, which holds nothing", qkey(in.Key))
		}
		if in.Size != int64(len(w.Payload)) {
			return fmt.Errorf("listing: List reports key %s with Size %d, want %d", qkey(in.Key), in.Size, len(w.Payload))
		}
		got := backends.Entry{Payload: w.Payload, Value: w.Value, Created: in.Created, Version: in.Version, Tags: in.Tags}
		if err := r.e.sameEntry(got, w); err != nil {
			return fmt.Errorf("listing: List reports key %s with other metadata than stored: %w", qkey(in.Key), err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing: %w", err)
	}
	var missing []string
	for k := range r.want {
		switch seen[k] {
		case 0:
			missing = append(missing, qkey(k))
		case 1:
		default:
			return fmt.Errorf("listing: List reports key %s %d times", qkey(k), seen[k])
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("listing: List skips the stored keys %s", strings.Join(missing, ", "))
	}
	return nil
}

// evict calls EvictTag and requires it to remove exactly the model's
// entries carrying tag.
func (r *readPaths) evict(ctx context.Context, te backends.TagEvicter, tag string) error {
	var carriers []string
	for k, w := range r.want {
		if slices.Contains(w.Tags, tag) {
			carriers = append(carriers, k)
		}
	}
	sort.Strings(carriers)
	n, err := te.EvictTag(ctx, tag)
	if err != nil {
		return fmt.Errorf("EvictTag(%q): %w", tag, err)
	}
	if n != len(carriers) {
		return fmt.Errorf("EvictTag(%q) reported %d entries removed, want %d (the entries %s carry it): the tag index does not follow every write",
			tag, n, len(carriers), strings.Join(carriers, ", "))
	}
	for _, k := range carriers {
		r.gone(k)
	}
	return r.verify(ctx, fmt.Sprintf("EvictTag(%q)", tag))
}

// checkReadPaths makes every kind of mutation the backend has and after
// each one reads the whole store back through every read path it has.
func checkReadPaths(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	r := newReadPaths(e, b)
	// Set, with tags and an empty payload.
	for _, kv := range []struct {
		k   string
		ent backends.Entry
	}{
		{"p0", newEntry([]byte("zero"), 1, "red")},
		{"p1", newEntry(nil, 2)},
		{"p2", newEntry(pattern(7, 3000), 3, "red", "blue")},
		{"p3", newEntry([]byte("three"), 4, "blue")},
	} {
		if err := set(ctx, b, kv.k, kv.ent); err != nil {
			return err
		}
		r.put(kv.k, kv.ent)
	}
	if err := r.verify(ctx, "Set"); err != nil {
		return err
	}
	// An overwrite that changes size and tags.
	ow := newEntry([]byte("two, overwritten"), 5, "green")
	if err := set(ctx, b, "p2", ow); err != nil {
		return err
	}
	r.put("p2", ow)
	if err := r.verify(ctx, "an overwrite with Set"); err != nil {
		return err
	}
	// SetMulti (the backend's own, if it has one): new keys and an
	// overwrite, tags and an empty payload.
	mk := []string{"p4", "p5", "p0"}
	me := []backends.Entry{newEntry([]byte("four"), 6, "red"), newEntry([]byte{}, 7, "blue"), newEntry(pattern(8, 5000), 8, "red", "green")}
	if err := backends.SetMulti(ctx, b, mk, me); err != nil {
		return fmt.Errorf("SetMulti: %w", err)
	}
	for i, k := range mk {
		r.put(k, me[i])
	}
	if err := r.verify(ctx, "SetMulti"); err != nil {
		return err
	}
	if err := del(ctx, b, "p3"); err != nil {
		return err
	}
	r.gone("p3")
	if err := r.verify(ctx, "Delete"); err != nil {
		return err
	}
	if err := backends.DeleteMulti(ctx, b, []string{"p4", "absent"}); err != nil {
		return fmt.Errorf("DeleteMulti: %w", err)
	}
	r.gone("p4")
	r.use("absent")
	if err := r.verify(ctx, "DeleteMulti"); err != nil {
		return err
	}
	if te, ok := b.(backends.TagEvicter); ok && e.has(FeatTags) {
		for _, tag := range []string{"blue", "red"} {
			if err := r.evict(ctx, te, tag); err != nil {
				return err
			}
		}
	}
	if fs, ok := b.(backends.FileStore); ok && e.has(FeatFiles) {
		for i, k := range []string{"p6", "p2"} {
			content := pattern(uint64(90+i), 2000+i)
			ent := newEntry(nil, 10+i, "file")
			f, err := os.CreateTemp(e.scratch, "suite-*")
			if err != nil {
				return err
			}
			_, werr := f.Write(content)
			if werr == nil {
				werr = fs.StoreFile(ctx, k, f, ent, false)
			}
			f.Close()
			os.Remove(f.Name())
			if werr != nil {
				return fmt.Errorf("StoreFile(%s): %w", qkey(k), werr)
			}
			ent.Payload = content
			r.put(k, ent)
		}
		if err := r.verify(ctx, "StoreFile"); err != nil {
			return err
		}
	}
	// Emptying the store by deleting what is left.
	var rest []string
	for k := range r.want {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		if err := del(ctx, b, k); err != nil {
			return err
		}
		r.gone(k)
	}
	return r.verify(ctx, "deleting every entry")
}

// ownValue is what writer w stores under key at step seq of round.
func ownValue(key string, w, seq int) backends.Entry { return concurrentValue(key, w, seq) }

// checkOwnKeys: writers on distinct keys, at once. Each must read back its
// own last write at every step and at the end: no write is lost to another
// writer's write of a different key.
func checkOwnKeys(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	return e.repeat(ctx, func(round int) error {
		const perWriter = 3
		writers, ops := e.cfg.writers, max(e.cfg.ops/2, 1)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var (
			wg       sync.WaitGroup
			once     sync.Once
			firstErr error
		)
		fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
		finals := make([][]*backends.Entry, writers)
		keysOf := func(w int) []string {
			ks := make([]string, perWriter)
			for i := range ks {
				ks[i] = fmt.Sprintf("own-%d-w%d-k%d", round, w, i)
			}
			return ks
		}
		readBack := func(k string, want *backends.Entry) error {
			got, err := b.Get(ctx, k)
			if want == nil || e.discards() {
				if err == nil {
					return fmt.Errorf("Get(%s) found an entry (version %d), want a miss: its writer's last operation deleted it", qkey(k), got.Version)
				}
				if !errors.Is(err, backends.ErrNotFound) {
					return fmt.Errorf("Get(%s): %w", qkey(k), err)
				}
				return nil
			}
			if errors.Is(err, backends.ErrNotFound) {
				return fmt.Errorf("Get(%s) is a miss, want its writer's last write (version %d): the write was lost", qkey(k), want.Version)
			}
			if err != nil {
				return fmt.Errorf("Get(%s): %w", qkey(k), err)
			}
			if !bytes.Equal(got.Payload, want.Payload) || got.Version != want.Version {
				return fmt.Errorf("Get(%s) returned version %d, want its writer's last write, version %d: a write was lost to a concurrent write of another key",
					qkey(k), got.Version, want.Version)
			}
			return nil
		}
		for w := 0; w < writers; w++ {
			wg.Add(1)
			e.goSafe(func() {
				defer wg.Done()
				keys := keysOf(w)
				last := make([]*backends.Entry, perWriter)
				for seq := 0; seq < ops && ctx.Err() == nil; seq++ {
					i := seq % perWriter
					k := keys[i]
					var err error
					switch {
					case seq%11 == 10:
						err = b.Delete(ctx, k)
						last[i] = nil
					case seq%4 == 3:
						j := (i + 1) % perWriter
						v1, v2 := ownValue(k, w, seq), ownValue(keys[j], w, seq)
						err = backends.SetMulti(ctx, b, []string{k, keys[j]}, []backends.Entry{v1, v2})
						last[i], last[j] = &v1, &v2
					default:
						v := ownValue(k, w, seq)
						err = b.Set(ctx, k, v)
						last[i] = &v
					}
					if err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("writer %d, step %d on %s: %w", w, seq, qkey(k), err))
						}
						return
					}
					if seq%3 == 0 {
						if err := readBack(k, last[i]); err != nil {
							fail(fmt.Errorf("writer %d reading its own key right after writing it: %w", w, err))
							return
						}
					}
				}
				finals[w] = last
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for w := 0; w < writers; w++ {
			for i, k := range keysOf(w) {
				if err := readBack(k, finals[w][i]); err != nil {
					return fmt.Errorf("after %d writers on distinct keys finished: %w", writers, err)
				}
			}
		}
		return nil
	})
}

// checkSharedStorage opens two instances on one directory. Each one's
// writes, overwrites, deletes, multi operations and evictions must be seen by
// the other — in both directions, and also after the other has already read
// the key (a per-instance cache of reads is caught) or read its absence.
func checkSharedStorage(ctx context.Context, e *env) error {
	a, err := e.open(ctx)
	if err != nil {
		return err
	}
	b, err := e.open(ctx)
	if err != nil {
		return fmt.Errorf("second instance: %w", err)
	}
	err = e.repeat(ctx, func(round int) error {
		for _, d := range []struct {
			x, y   backends.Backend
			xn, yn string
		}{{a, b, "A", "B"}, {b, a, "B", "A"}} {
			if err := e.sharedDirection(ctx, d.x, d.y, d.xn, d.yn, fmt.Sprintf("shared-%d-%s", round, d.xn)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Closing one instance leaves the other working.
	if err := a.Close(); err != nil {
		return fmt.Errorf("closing instance A: %w", err)
	}
	v3 := newEntry([]byte("after A closed"), 3)
	if err := set(ctx, b, "shared", v3); err != nil {
		return fmt.Errorf("instance B after A closed: %w", err)
	}
	if err := e.expect(ctx, b, "shared", v3); err != nil {
		return fmt.Errorf("instance B after A closed: %w", err)
	}
	// A third instance opened later sees what is stored.
	c, err := e.open(ctx)
	if err != nil {
		return fmt.Errorf("third instance: %w", err)
	}
	if err := e.expect(ctx, c, "shared", v3); err != nil {
		return fmt.Errorf("an instance opened later: %w", err)
	}
	return nil
}

func (e *env) sharedDirection(ctx context.Context, x, y backends.Backend, xn, yn, k string) error {
	who := func(format string, args ...any) string {
		return fmt.Sprintf("instance %s ", yn) + fmt.Sprintf(format, args...)
	}
	if err := expectMiss(ctx, y, k, "nothing was stored yet"); err != nil {
		return fmt.Errorf("%s: %w", who("before any write"), err)
	}
	v1 := newEntry([]byte("first, by "+xn), 1, "s1")
	if err := set(ctx, x, k, v1); err != nil {
		return err
	}
	if err := e.expect(ctx, y, k, v1); err != nil {
		return fmt.Errorf("%s: %w", who("reading %s's write after it had read the key's absence", xn), err)
	}
	v2 := newEntry(pattern(5, 7000), 2, "s2")
	if err := set(ctx, x, k, v2); err != nil {
		return err
	}
	if err := e.expect(ctx, y, k, v2); err != nil {
		return fmt.Errorf("%s: %w", who("reading %s's overwrite of a key it had already read", xn), err)
	}
	if err := del(ctx, x, k); err != nil {
		return err
	}
	if err := expectMiss(ctx, y, k, fmt.Sprintf("instance %s deleted it", xn)); err != nil {
		return fmt.Errorf("%s: %w", who("after %s deleted a key it had already read", xn), err)
	}
	// Multi operations.
	mk := []string{k + "/m1", k + "/m2"}
	me := []backends.Entry{newEntry([]byte("m1 by "+xn), 3), newEntry([]byte("m2 by "+xn), 4)}
	if err := backends.SetMulti(ctx, x, mk, me); err != nil {
		return fmt.Errorf("instance %s: SetMulti: %w", xn, err)
	}
	if err := e.expectMulti(ctx, helperOps(y), mk, map[string]backends.Entry{mk[0]: me[0], mk[1]: me[1]}); err != nil {
		return fmt.Errorf("%s: %w", who("reading %s's SetMulti", xn), err)
	}
	if err := backends.DeleteMulti(ctx, x, mk); err != nil {
		return fmt.Errorf("instance %s: DeleteMulti: %w", xn, err)
	}
	if err := e.expectMulti(ctx, helperOps(y), mk, nil); err != nil {
		return fmt.Errorf("%s: %w", who("after %s's DeleteMulti of keys it had already read", xn), err)
	}
	for _, m := range mk {
		if err := expectMiss(ctx, y, m, fmt.Sprintf("instance %s deleted it", xn)); err != nil {
			return fmt.Errorf("%s: %w", who("after %s's DeleteMulti", xn), err)
		}
	}
	// Eviction.
	if te, ok := x.(backends.TagEvicter); ok && e.has(FeatTags) {
		tk := k + "/tagged"
		tag := "evict-" + k
		v := newEntry([]byte("tagged"), 5, tag)
		if err := set(ctx, x, tk, v); err != nil {
			return err
		}
		if err := e.expect(ctx, y, tk, v); err != nil {
			return fmt.Errorf("%s: %w", who("reading %s's write", xn), err)
		}
		n, err := te.EvictTag(ctx, tag)
		if err != nil {
			return fmt.Errorf("instance %s: EvictTag: %w", xn, err)
		}
		if n != 1 {
			return fmt.Errorf("instance %s: EvictTag(%q) reported %d entries removed, want 1", xn, tag, n)
		}
		if err := expectMiss(ctx, y, tk, fmt.Sprintf("instance %s evicted its tag", xn)); err != nil {
			return fmt.Errorf("%s: %w", who("after %s's EvictTag of a key it had already read", xn), err)
		}
	}
	// Finally y writes and x, which has read nothing of this key, reads.
	v3 := newEntry([]byte("by "+yn), 6)
	if err := set(ctx, y, k, v3); err != nil {
		return err
	}
	if err := e.expect(ctx, x, k, v3); err != nil {
		return fmt.Errorf("instance %s reading %s's write: %w", xn, yn, err)
	}
	return del(ctx, y, k)
}
