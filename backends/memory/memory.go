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
//	                    recently used (default 0: unbounded)
package memory

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/regioncache/regioncache/backends"
)

func init() {
	backends.Register("memory", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Backend is the memory backend. Its methods are safe for concurrent use.
type Backend struct {
	copyValues bool
	maxEntries int

	mu      sync.RWMutex
	entries map[string]*item
	lru     *list.List // front: most recently used; nil when unbounded
	closed  bool
}

type item struct {
	key   string
	entry backends.Entry
	elem  *list.Element
}

// Open returns a memory backend configured by args (see the package doc).
func Open(args backends.Args) (*Backend, error) {
	if err := args.Only("copy_values", "max_entries"); err != nil {
		return nil, err
	}
	cv, err := args.Bool("copy_values", false)
	if err != nil {
		return nil, err
	}
	max, err := args.Int("max_entries", 0)
	if err != nil {
		return nil, err
	}
	if max < 0 {
		return nil, fmt.Errorf("%w: max_entries: want 0 (unbounded) or a positive count, got %d", backends.ErrBadArgument, max)
	}
	b := &Backend{copyValues: cv, maxEntries: max, entries: make(map[string]*item)}
	if max > 0 {
		b.lru = list.New()
	}
	return b, nil
}

// New returns an unbounded memory backend keeping Go values.
func New() *Backend {
	b, _ := Open(nil)
	return b
}

// Capabilities implements backends.Capabler.
func (b *Backend) Capabilities() backends.Capabilities {
	c := backends.CapMulti | backends.CapTags | backends.CapList
	if !b.copyValues {
		c |= backends.CapKeepsValues
	}
	return c
}

// KeepsValues implements backends.ValueKeeper: true unless copy_values is set.
func (b *Backend) KeepsValues() bool { return !b.copyValues }

func closedErr() error { return fmt.Errorf("memory: %w", backends.ErrClosed) }

// Get implements backends.Backend.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if b.lru != nil {
		return b.getLRU(key)
	}
	b.mu.RLock()
	it, ok := b.entries[key]
	var e backends.Entry
	if ok {
		e = it.entry
	}
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return backends.Entry{}, closedErr()
	}
	if !ok {
		return backends.Entry{}, backends.ErrNotFound
	}
	return e, nil
}

func (b *Backend) getLRU(key string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
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

// setLocked stores e; b.mu must be held for writing.
func (b *Backend) setLocked(key string, e backends.Entry) {
	if it, ok := b.entries[key]; ok {
		it.entry = e
		if b.lru != nil {
			b.lru.MoveToFront(it.elem)
		}
		return
	}
	it := &item{key: key, entry: e}
	b.entries[key] = it
	if b.lru != nil {
		it.elem = b.lru.PushFront(it)
		for b.lru.Len() > b.maxEntries {
			old := b.lru.Remove(b.lru.Back()).(*item)
			delete(b.entries, old.key)
		}
	}
}

func (b *Backend) deleteLocked(key string) {
	if it, ok := b.entries[key]; ok {
		delete(b.entries, key)
		if b.lru != nil {
			b.lru.Remove(it.elem)
		}
	}
}

// Set implements backends.Backend.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	e = b.prepare(e)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedErr()
	}
	b.setLocked(key, e)
	return nil
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return closedErr()
	}
	b.deleteLocked(key)
	return nil
}

// GetMulti implements backends.MultiGetter.
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	out := make([]*backends.Entry, len(keys))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, closedErr()
	}
	for i, k := range keys {
		if it, ok := b.entries[k]; ok {
			e := it.entry
			out[i] = &e
			if b.lru != nil {
				b.lru.MoveToFront(it.elem)
			}
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
	if b.closed {
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
	if b.closed {
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
	if b.closed {
		return 0, closedErr()
	}
	n := 0
	for k, it := range b.entries {
		if slices.Contains(it.entry.Tags, tag) {
			b.deleteLocked(k)
			n++
		}
	}
	return n, nil
}

// List implements backends.Lister. Size is the payload length (zero for
// values kept unencoded).
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return closedErr()
	}
	infos := make([]backends.EntryInfo, 0, len(b.entries))
	for k, it := range b.entries {
		infos = append(infos, backends.EntryInfo{Key: k, Size: int64(len(it.entry.Payload)),
			Created: it.entry.Created, Version: it.entry.Version, Tags: slices.Clone(it.entry.Tags)})
	}
	b.mu.RUnlock()
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
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return backends.Stats{}, closedErr()
	}
	var s backends.Stats
	for _, it := range b.entries {
		s.Entries++
		s.Bytes += int64(len(it.entry.Payload))
	}
	return s, nil
}

// Close implements backends.Backend. It drops every entry.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.entries = nil
	if b.lru != nil {
		b.lru.Init()
	}
	return nil
}
