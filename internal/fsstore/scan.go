package fsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
)

type nameKind int

const (
	kindOther nameKind = iota
	kindEntry
	kindData
	kindTemp
)

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func classify(n string) nameKind {
	switch {
	case len(n) == 32 && isHex(n):
		return kindEntry
	case len(n) == 54 && n[32] == '.' && strings.HasSuffix(n, ".data") && isHex(n[:32]) && isHex(n[33:49]):
		return kindData
	case strings.HasPrefix(n, tmpPref):
		return kindTemp
	}
	return kindOther
}

// candidate is an entry seen by a scan.
type candidate struct {
	sh   *dirHandle
	name string
	st   fileStat
	acct int64 // entry plus data files with its hash
}

// scanShard lists shard i: it sweeps the leftovers of dead writers
// (temporary files and, for rawfs, unreferenced data files) and returns the
// entries.
func (s *Store) scanShard(ctx context.Context, i int) ([]candidate, error) {
	return s.scanShardSample(ctx, i, 0)
}

// scanShardSample is scanShard that, when sample > 0 and the shard holds
// more entries than that, looks at a random sample of that many entries
// only (and sweeps nothing): eviction's cost then does not grow with the
// size of the directories. The candidates' acct is then the entry file's
// size alone.
func (s *Store) scanShardSample(ctx context.Context, i, sample int) ([]candidate, error) {
	sh, err := s.shard(i, false)
	if err != nil || sh == nil {
		return nil, err
	}
	names, err := sh.readNames()
	if err != nil {
		return nil, err
	}
	if sample > 0 && len(names) > sample {
		rand.Shuffle(len(names), func(a, b int) { names[a], names[b] = names[b], names[a] })
		var out []candidate
		for _, n := range names {
			if len(out) >= sample {
				break
			}
			if classify(n) != kindEntry {
				continue
			}
			if st, err := sh.lstat(n); err == nil && st.regular {
				out = append(out, candidate{sh: sh, name: n, st: st, acct: st.size})
			}
		}
		return out, nil
	}
	var out []candidate
	dataSize := map[string]int64{}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := classify(n)
		if k == kindOther {
			continue
		}
		if k == kindTemp {
			s.removeAbandoned(sh, n, nil)
			continue
		}
		st, err := sh.lstat(n)
		if err != nil {
			continue
		}
		switch k {
		case kindData:
			if s.sweepData(ctx, sh, n) {
				continue
			}
			dataSize[n[:32]] += st.size
		case kindEntry:
			if st.regular {
				out = append(out, candidate{sh: sh, name: n, st: st, acct: st.size})
			}
		}
	}
	for j := range out {
		out[j].acct += dataSize[out[j].name]
	}
	return out, nil
}

// sweepData removes rawfs data file n if no live writer holds it and its
// entry does not refer to it.
func (s *Store) sweepData(ctx context.Context, sh *dirHandle, n string) bool {
	if s.o.Kind != KindFile {
		return false
	}
	return s.removeAbandoned(sh, n, func() bool {
		h, ok, err := s.internal.TryLock(ctx, lockEntry+n[:32])
		if err != nil || !ok {
			return false
		}
		defer h.Unlock()
		ref, _ := s.dataRef(sh, n[:32])
		return ref.Name != n
	}) > 0
}

// scanAll scans every shard. A shard that cannot be read is reported
// (OnProblem) and skipped: one damaged shard affects only its own entries.
func (s *Store) scanAll(ctx context.Context, fn func(c []candidate) error) error {
	for i := range 256 {
		c, err := s.scanShard(ctx, i)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			s.problem(fmt.Sprintf("%s/%02x", s.dir, i), err)
			c = nil
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// sweepAll runs the first sweep of an opened store.
func (s *Store) sweepAll() { s.sweep(s.bgCtx) }

// sweepEvery sweeps every SweepInterval until Close, and sooner (once they
// are SweepAge old) when the last sweep saw leftovers too young to take.
func (s *Store) sweepEvery() {
	if s.o.SweepInterval < 0 {
		return
	}
	for {
		next := s.o.SweepInterval
		if s.resweep.Swap(false) {
			next = min(next, s.o.SweepAge+100*time.Millisecond)
		}
		t := time.NewTimer(next)
		select {
		case <-s.bgCtx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.sweep(s.bgCtx)
	}
}

// removeAbandoned removes the leftover name of a dead writer from d (see
// dirHandle.removeAbandoned), noting one too young to take for a sweep soon.
func (s *Store) removeAbandoned(d *dirHandle, name string, ok func() bool) int64 {
	n, young := d.removeAbandoned(name, s.o.SweepAge, ok)
	if young {
		s.resweep.Store(true)
	}
	return n
}

// sweep, in one process at a time, removes the leftovers of dead writers
// (from tmp/ and every shard: temporary files and unreferenced rawfs data
// files that no live writer holds), recounts the directory (correcting the
// size counter if nothing changed it meanwhile, which undoes the drift a
// writer killed between its commit and its accounting leaves) and evicts if
// that shows the directory over cache_size. Its cost is one directory
// listing per shard and one lstat per entry, once per SweepInterval.
func (s *Store) sweep(ctx context.Context) {
	h, ok, err := s.internal.TryLock(ctx, lockSweep)
	if err != nil || !ok {
		return
	}
	defer h.Unlock()
	s.sweepTempDir()
	if _, err := s.recount(ctx, nil); err != nil {
		return
	}
	if s.o.MaxBytes > 0 {
		if b, _, _ := s.counter(); b > s.o.MaxBytes && s.evicting.CompareAndSwap(false, true) {
			s.evictLoop()
			s.evicting.Store(false)
		}
	}
}

// Recount scans the whole directory and returns what it found. It resets the
// shared size counter to that only if no update happened during the scan, so
// a concurrent write is never lost.
func (s *Store) Recount(ctx context.Context) (backends.Stats, error) {
	return s.recount(ctx, nil)
}

func (s *Store) recount(ctx context.Context, progress func(int)) (backends.Stats, error) {
	var st backends.Stats
	_, _, gen := s.counter()
	done := 0
	err := s.scanAll(ctx, func(c []candidate) error {
		done++
		if progress != nil {
			progress(done)
		}
		for _, x := range c {
			st.Entries++
			st.Bytes += x.acct
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if gen >= 0 {
		s.setSizeIf(gen, st.Bytes, st.Entries)
	}
	return st, nil
}

// kickEvict starts the background evictor unless it is running. The caller
// is inside enter/leave, so Close is not waiting yet. A pass that has begun
// is finished even if Close comes meanwhile, so that a process that writes
// and exits leaves the directory within cache_size.
func (s *Store) kickEvict() {
	if !s.evicting.CompareAndSwap(false, true) {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		for {
			s.evictLoop()
			s.evicting.Store(false)
			// A writer that found the evictor running just before it
			// stopped relies on this re-check.
			if b, _, _ := s.counter(); b <= s.o.MaxBytes || s.closing.Load() || !s.evicting.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// evictLoop evicts while the counter is over MaxBytes: one process at a time
// (the others re-check after it), down to the low-water mark.
func (s *Store) evictLoop() {
	ctx := context.Background() // a pass is bounded by its sample
	target := int64(float64(s.o.MaxBytes) * s.o.LowWater)
	for {
		total, _, _ := s.counter()
		if total <= s.o.MaxBytes {
			return
		}
		h, ok, err := s.internal.TryLock(ctx, lockEvict)
		if err != nil {
			return
		}
		if !ok {
			// Another process is evicting; look again shortly.
			if s.closing.Load() {
				return
			}
			select {
			case <-s.bgCtx.Done():
			case <-time.After(2 * time.Millisecond):
			}
			continue
		}
		total, n, _ := s.counter()
		removed := 0
		if total > s.o.MaxBytes {
			_, removed = s.evict(ctx, total, n, target)
		}
		h.Unlock()
		if removed == 0 {
			return
		}
	}
}

// evict removes approximately least-recently-used entries until the counter
// is at most target. It scans shards in random order only until it has seen
// four candidates per expected victim (at least 64), so a pass costs in
// proportion to what it frees, not to the number of entries; the oldest
// access marks (mtimes) among the sample go first. Each victim is deleted
// only if, under its entry lock, it is still the file that was sampled. The
// caller holds the eviction lock.
func (s *Store) evict(ctx context.Context, total, n, target int64) (freed int64, removed int) {
	need := total - target
	if need <= 0 {
		return 0, 0
	}
	avg := int64(1)
	if n > 0 {
		avg = max(total/n, 1)
	}
	want := max(4*(need/avg+1), 64)
	var cands []candidate
	var seenBytes, seen int64
	all := true
	_, _, gen := s.counter()
	for k, i := range rand.Perm(256) {
		c, err := s.scanShardSample(ctx, i, int(want))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			all = false // a damaged shard: skipped, and the count is partial
			continue
		}
		if int64(len(c)) >= want {
			all = false // maybe sampled: the count is partial
		}
		for _, x := range c {
			seenBytes += x.acct
		}
		seen += int64(len(c))
		cands = append(cands, c...)
		if int64(len(cands)) >= want && k < 255 {
			all = false
			break
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.st.mtimeNs < b.st.mtimeNs:
			return -1
		case a.st.mtimeNs > b.st.mtimeNs:
			return 1
		}
		return 0
	})
	if all {
		// The whole directory was seen. If nothing was written meanwhile,
		// what is really there beats the counter (which drifts if a writer
		// dies between its rename and its accounting).
		if c1, e1, _ := s.counter(); (c1 != seenBytes || e1 != seen) && s.setSizeIf(gen, seenBytes, seen) {
			need = seenBytes - target
		}
	}
	if s.afterSelect != nil {
		s.afterSelect(cands)
	}

	for _, c := range cands {
		if freed >= need {
			break
		}
		got, err := s.removeEntry(ctx, c.sh, c.name, &c.st)
		if err == nil && got > 0 {
			freed += got
			removed++
		}
	}
	return freed, removed
}

// EntryInfo describes an entry for listings.
type EntryInfo struct {
	backends.EntryInfo
	Path     string    // entry file
	DataPath string    // rawfs data file, if any
	Accessed time.Time // access mark (mtime)
	Disk     int64     // bytes on disk: entry file plus data file
}

// List calls fn for every readable entry of the store's kind.
func (s *Store) List(ctx context.Context, fn func(EntryInfo) error) error {
	return s.Walk(ctx, fn, nil)
}

// Walk is List with progress: progress, if non-nil, is called after each of
// the 256 shard directories with the number done.
func (s *Store) Walk(ctx context.Context, fn func(EntryInfo) error, progress func(done int)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	done := 0
	return s.scanAll(ctx, func(c []candidate) error {
		done++
		if progress != nil {
			defer progress(done)
		}
		for _, x := range c {
			info, err := s.info(x)
			if err != nil {
				continue
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) info(x candidate) (EntryInfo, error) {
	// The header (key and tags) is at the start; read it alone.
	f, st, err := x.sh.openRead(x.name)
	if err != nil {
		return EntryInfo{}, err
	}
	defer f.Close()
	buf := make([]byte, min(st.size, 4096))
	for {
		if _, err := f.ReadAt(buf, 0); err != nil {
			return EntryInfo{}, err
		}
		h, need, err := parseHeader(buf, st.size, s.o.Kind, nil, true, true)
		if err != nil {
			return EntryInfo{}, err
		}
		if need > 0 {
			buf = make([]byte, need)
			continue
		}
		info := EntryInfo{
			EntryInfo: backends.EntryInfo{Key: h.Key, Size: h.PayloadLen, Created: h.Entry.Created, Version: h.Entry.Version, Tags: h.Entry.Tags},
			Path:      x.sh.path + "/" + x.name,
			Accessed:  time.Unix(0, x.st.mtimeNs),
			Disk:      x.acct,
		}
		if s.o.Kind == KindFile {
			p := make([]byte, h.PayloadLen)
			if _, err := f.ReadAt(p, int64(h.PayloadOff)); err != nil {
				return EntryInfo{}, err
			}
			ref, ok := DecodeFileRef(p)
			if !ok || !dataNameOK(x.name, ref.Name) {
				return EntryInfo{}, ErrCorrupt
			}
			info.Size = ref.Size
			info.DataPath = x.sh.path + "/" + ref.Name
		}
		return info, nil
	}
}

// EvictTag removes every entry carrying tag.
func (s *Store) EvictTag(ctx context.Context, tag string) (int, error) {
	var victims []candidate
	err := s.List(ctx, func(e EntryInfo) error {
		if slices.Contains(e.Tags, tag) {
			sh, _ := s.shard(shardOf(Name(e.Key)), false)
			if sh != nil {
				victims = append(victims, candidate{sh: sh, name: Name(e.Key)})
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return s.removeAll(ctx, victims)
}

func (s *Store) removeAll(ctx context.Context, victims []candidate) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	for _, v := range victims {
		got, err := s.removeEntry(ctx, v.sh, v.name, nil)
		if err != nil {
			return n, err
		}
		if got > 0 {
			n++
		}
	}
	return n, nil
}

// Stats scans the directory and reports its entries and bytes (also
// correcting the shared counter).
func (s *Store) Stats(ctx context.Context) (backends.Stats, error) {
	if err := s.enter(ctx); err != nil {
		return backends.Stats{}, err
	}
	defer s.leave()
	return s.Recount(ctx)
}

// PruneResult reports what Prune removed.
type PruneResult struct {
	Expired, Evicted int
	Freed            int64
}

// Prune removes entries created before expiredBefore (if not zero), then, if
// maxBytes > 0, evicts least recently used entries until the directory holds
// at most maxBytes. progress, if non-nil, is called with the number of shards
// done (of 256).
func (s *Store) Prune(ctx context.Context, expiredBefore time.Time, maxBytes int64, progress func(done int)) (PruneResult, error) {
	var r PruneResult
	if err := s.enter(ctx); err != nil {
		return r, err
	}
	defer s.leave()
	if !expiredBefore.IsZero() {
		for i := range 256 {
			c, err := s.scanShard(ctx, i)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return r, cerr
				}
				s.problem(fmt.Sprintf("%s/%02x", s.dir, i), err)
			}
			for _, x := range c {
				info, err := s.info(x)
				if err != nil || info.Created.IsZero() || !info.Created.Before(expiredBefore) {
					continue
				}
				got, err := s.removeEntry(ctx, x.sh, x.name, &x.st)
				if err != nil {
					return r, err
				}
				if got > 0 {
					r.Expired++
					r.Freed += got
				}
			}
			if progress != nil {
				progress(i + 1)
			}
		}
	}
	if maxBytes > 0 {
		h, err := s.internal.Lock(ctx, lockEvict)
		if err != nil {
			return r, err
		}
		defer h.Unlock()
		var prog func(int)
		if expiredBefore.IsZero() {
			prog = progress
		}
		st, err := s.recount(ctx, prog)
		if err != nil {
			return r, err
		}
		for st.Bytes > maxBytes {
			freed, n := s.evict(ctx, st.Bytes, st.Entries, maxBytes)
			if n == 0 {
				break
			}
			r.Evicted += n
			r.Freed += freed
			st.Bytes -= freed
			st.Entries -= int64(n)
		}
	}
	return r, nil
}

// ErrNoEntry is returned by RemoveKey when the key has no entry.
var ErrNoEntry = errors.New("no entry for key")

// RemoveKey deletes key's entry, reporting ErrNoEntry if there was none.
func (s *Store) RemoveKey(ctx context.Context, key string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), false)
	if err != nil {
		return err
	}
	if sh == nil {
		return fmt.Errorf("%q: %w", key, ErrNoEntry)
	}
	got, err := s.removeEntry(ctx, sh, name, nil)
	if err != nil {
		return err
	}
	if got == 0 {
		return fmt.Errorf("%q: %w", key, ErrNoEntry)
	}
	return nil
}

// Info describes key's entry without reading its payload; a miss is
// ErrNotFound.
func (s *Store) Info(ctx context.Context, key string) (EntryInfo, error) {
	if err := s.enter(ctx); err != nil {
		return EntryInfo{}, err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), false)
	if err != nil {
		return EntryInfo{}, err
	}
	if sh == nil {
		return EntryInfo{}, backends.ErrNotFound
	}
	st, err := sh.lstat(name)
	if err != nil || !st.regular {
		return EntryInfo{}, backends.ErrNotFound
	}
	info, err := s.info(candidate{sh: sh, name: name, st: st, acct: st.size})
	if err != nil || info.Key != key {
		return EntryInfo{}, backends.ErrNotFound
	}
	return info, nil
}
