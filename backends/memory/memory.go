// Package memory is the in-process regioncache backend, registered as
// "memory". Like dogpile.cache's "memory" backend it keeps Go values
// unencoded, so a hit costs a map read and no decoding; entries are private
// to the backend instance and die with the process.
//
// Arguments:
//
//	copy_values  bool   store encoded bytes (copied) instead of Go values, so
//	                    that callers can never alias a cached value (default false)
//	max_entries  int    keep at most this many entries, evicting the least
//	                    recently used (default 0: no count bound)
//	max_size     size   keep at most this many bytes (a number of bytes or a
//	                    string such as "64MiB"), evicting the least recently
//	                    used (default 0: no byte bound). An entry costs the
//	                    length of its key plus the length of its encoded
//	                    payload, so max_size implies copy_values; from Go,
//	                    Options.Cost counts Go values instead.
//
// With both bounds, an entry is evicted as soon as either is exceeded. An
// entry that alone costs more than max_size is not kept (Set succeeds; a
// later Get misses).
package memory

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/strtable"
)

func init() {
	backends.Register("memory", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Backend is the memory backend. Its methods are safe for concurrent use.
//
// Unbounded (neither max_entries nor max_size), entries live in a table whose reads take no lock, and are never
// modified once stored (a Set stores a new entry), so Get and GetMulti take
// no lock and write no memory shared between goroutines: hits on one hot key
// scale with the cores that read it. Writers are serialised by a mutex. With
// max_entries or max_size, every read moves the entry to the front of the LRU list, so
// reads and writes alike take the mutex; max_size counts each entry's cost
// (see Options.Cost) against the bound.
type Backend struct {
	copyValues bool
	maxEntries int
	maxSize    int64
	cost       func(key string, e backends.Entry) int64
	size       int64 // bounded only: the sum of the entries' costs; under mu

	closed atomic.Bool

	// values maps key → *backends.Entry when unbounded; the pointed-to entry
	// is immutable. Reads take no lock (see internal/strtable).
	values *strtable.Table[backends.Entry]

	mu      sync.Mutex       // held by every writer; by readers only when bounded
	entries map[string]*item // bounded only
	lru     *list.List       // bounded only; front: most recently used
}

type item struct {
	key   string
	entry backends.Entry
	cost  int64
	elem  *list.Element
}

// Options configure a memory backend built in Go (see the package doc for
// the arguments they mirror).
type Options struct {
	// CopyValues stores encoded bytes (copied) instead of Go values.
	CopyValues bool
	// MaxEntries bounds the number of entries (0: no bound).
	MaxEntries int
	// MaxSize bounds the sum of the entries' costs, in bytes (0: no bound).
	MaxSize int64
	// Cost is an entry's cost against MaxSize; it must be cheap,
	// deterministic and non-negative, and is called under the backend's
	// lock. Nil counts len(key) + len(e.Payload), and then MaxSize implies
	// CopyValues (Go values have no encoded size); with Cost, Go values are
	// kept unless CopyValues is set, and Cost sees them in e.Value.
	Cost func(key string, e backends.Entry) int64
}

// Open returns a memory backend configured by args (see the package doc).
func Open(args backends.Args) (*Backend, error) {
	if err := args.Only("copy_values", "max_entries", "max_size"); err != nil {
		return nil, err
	}
	var o Options
	var err error
	if o.CopyValues, err = args.Bool("copy_values", false); err != nil {
		return nil, err
	}
	if o.MaxEntries, err = args.Int("max_entries", 0); err != nil {
		return nil, err
	}
	if o.MaxSize, err = args.Size("max_size", 0); err != nil {
		return nil, err
	}
	return OpenOptions(o)
}

// OpenOptions returns a memory backend configured by o. A negative bound is
// an error wrapping backends.ErrBadArgument.
func OpenOptions(o Options) (*Backend, error) {
	if o.MaxEntries < 0 {
		return nil, fmt.Errorf("%w: max_entries: want 0 (unbounded) or a positive count, got %d", backends.ErrBadArgument, o.MaxEntries)
	}
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("%w: max_size: want 0 (unbounded) or a positive number of bytes, got %d", backends.ErrBadArgument, o.MaxSize)
	}
	b := &Backend{copyValues: o.CopyValues, maxEntries: o.MaxEntries, maxSize: o.MaxSize, cost: o.Cost, values: strtable.New[backends.Entry]()}
	if o.MaxSize > 0 && o.Cost == nil {
		b.copyValues = true
	}
	if b.cost == nil {
		b.cost = encodedCost
	}
	if o.MaxEntries > 0 || o.MaxSize > 0 {
		b.entries = make(map[string]*item)
		b.lru = list.New()
	}
	return b, nil
}

// encodedCost is the default cost of an entry: its key and payload bytes.
func encodedCost(key string, e backends.Entry) int64 {
	return int64(len(key) + len(e.Payload))
}

// New returns an unbounded memory backend keeping Go values.
func New() *Backend {
	b, _ := Open(nil)
	return b
}

// KeepsValues implements backends.ValueKeeper: true unless copy_values is set.
func (b *Backend) KeepsValues() bool { return !b.copyValues }

func closedErr() error { return fmt.Errorf("memory: %w", backends.ErrClosed) }

// Get implements backends.Backend.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if b.lru != nil {
		return b.getLRU(key)
	}
	v := b.values.Load(key)
	// closed is read after the map: if it is still false, the read happened
	// before Close began to drop the entries.
	if b.closed.Load() {
		return backends.Entry{}, closedErr()
	}
	if v == nil {
		return backends.Entry{}, backends.ErrNotFound
	}
	return *v, nil
}

func (b *Backend) getLRU(key string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return backends.Entry{}, closedErr()
	}
	it, ok := b.entries[key]
	if !ok {
		return backends.Entry{}, backends.ErrNotFound
	}
	b.lru.MoveToFront(it.elem)
	return it.entry, nil
}

func (b *Backend) prepare(e backends.Entry) backends.Entry {
	e.Tags = slices.Clone(e.Tags)
	if b.copyValues {
		e.Value = nil
		if e.Payload != nil {
			e.Payload = slices.Clone(e.Payload)
		}
	}
	return e
}

// setLocked stores e; b.mu must be held.
func (b *Backend) setLocked(key string, e backends.Entry) {
	if b.lru == nil {
		b.values.Store(key, &e)
		return
	}
	var cost int64
	if b.maxSize > 0 {
		cost = max(b.cost(key, e), 0)
		if cost > b.maxSize {
			// It would evict everything and still not fit: not kept, and
			// no older value of key survives it.
			b.deleteLocked(key)
			return
		}
	}
	if it, ok := b.entries[key]; ok {
		b.size += cost - it.cost
		it.entry, it.cost = e, cost
		b.lru.MoveToFront(it.elem)
	} else {
		it := &item{key: key, entry: e, cost: cost}
		b.entries[key] = it
		it.elem = b.lru.PushFront(it)
		b.size += cost
	}
	for (b.maxEntries > 0 && b.lru.Len() > b.maxEntries) || (b.maxSize > 0 && b.size > b.maxSize) {
		old := b.lru.Remove(b.lru.Back()).(*item)
		delete(b.entries, old.key)
		b.size -= old.cost
	}
}

// deleteLocked deletes key; b.mu must be held.
func (b *Backend) deleteLocked(key string) {
	if b.lru == nil {
		b.values.Remove(key)
		return
	}
	if it, ok := b.entries[key]; ok {
		delete(b.entries, key)
		b.lru.Remove(it.elem)
		b.size -= it.cost
	}
}

// rangeLocked calls fn for every entry until fn returns false; b.mu must be
// held. fn may delete the entry it is given.
func (b *Backend) rangeLocked(fn func(key string, e *backends.Entry) bool) {
	if b.lru == nil {
		b.values.Range(fn)
		return
	}
	for k, it := range b.entries {
		if !fn(k, &it.entry) {
			return
		}
	}
}

// Set implements backends.Backend.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	e = b.prepare(e)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return closedErr()
	}
	b.setLocked(key, e)
	return nil
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return closedErr()
	}
	b.deleteLocked(key)
	return nil
}

// GetMulti implements backends.MultiGetter.
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	out := make([]*backends.Entry, len(keys))
	if b.lru == nil {
		for i, k := range keys {
			if v := b.values.Load(k); v != nil {
				e := *v
				out[i] = &e
			}
		}
		if b.closed.Load() {
			return nil, closedErr()
		}
		return out, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, closedErr()
	}
	for i, k := range keys {
		if it, ok := b.entries[k]; ok {
			e := it.entry
			out[i] = &e
			b.lru.MoveToFront(it.elem)
		}
	}
	return out, nil
}

// SetMulti implements backends.MultiSetter.
func (b *Backend) SetMulti(ctx context.Context, keys []string, entries []backends.Entry) error {
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", backends.ErrBadArgument, len(keys), len(entries))
	}
	prepared := make([]backends.Entry, len(entries))
	for i, e := range entries {
		prepared[i] = b.prepare(e)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return closedErr()
	}
	for i, k := range keys {
		b.setLocked(k, prepared[i])
	}
	return nil
}

// DeleteMulti implements backends.MultiDeleter.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return closedErr()
	}
	for _, k := range keys {
		b.deleteLocked(k)
	}
	return nil
}

// EvictTag implements backends.TagEvicter. It scans every entry.
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return 0, closedErr()
	}
	n := 0
	b.rangeLocked(func(k string, e *backends.Entry) bool {
		if slices.Contains(e.Tags, tag) {
			b.deleteLocked(k)
			n++
		}
		return true
	})
	return n, nil
}

// List implements backends.Lister. Size is the payload length (zero for
// values kept unencoded).
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return closedErr()
	}
	var infos []backends.EntryInfo
	if b.lru != nil {
		infos = make([]backends.EntryInfo, 0, len(b.entries))
	}
	b.rangeLocked(func(k string, e *backends.Entry) bool {
		infos = append(infos, backends.EntryInfo{Key: k, Size: int64(len(e.Payload)),
			Created: e.Created, Version: e.Version, Tags: slices.Clone(e.Tags)})
		return true
	})
	b.mu.Unlock()
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// StorageStats implements backends.StatReporter.
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return backends.Stats{}, closedErr()
	}
	var s backends.Stats
	b.rangeLocked(func(_ string, e *backends.Entry) bool {
		s.Entries++
		s.Bytes += int64(len(e.Payload))
		return true
	})
	return s, nil
}

// Close implements backends.Backend. It drops every entry.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed.Store(true)
	b.values.Clear()
	b.entries = nil
	b.size = 0
	if b.lru != nil {
		b.lru.Init()
	}
	return nil
}
