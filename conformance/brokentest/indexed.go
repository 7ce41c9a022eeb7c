package brokentest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/regioncache/regioncache/backends"
)

// indexFault selects the one mistake an indexed backend makes.
type indexFault int

const (
	indexCorrect          indexFault = iota
	indexStatsSkipEvict              // EvictTag does not update the stats counters
	indexTagsSkipSetMulti            // SetMulti does not record tags
	indexListSkipsEmpty              // List skips entries with an empty payload
	indexShortMulti                  // GetMulti drops the last result
)

// WithIndex returns b with multi operations, tags, listing and storage
// statistics implemented correctly on an index the wrapper keeps beside b.
func WithIndex(b backends.Backend) backends.Backend { return newIndexed(b, indexCorrect) }

// StatsMissEvictTag is WithIndex whose StorageStats counters are kept apart
// from the index and not updated by EvictTag.
func StatsMissEvictTag(b backends.Backend) backends.Backend {
	return newIndexed(b, indexStatsSkipEvict)
}

// TagsSkipSetMulti is WithIndex whose SetMulti forgets to record the tags
// of the entries it writes, so EvictTag misses them.
func TagsSkipSetMulti(b backends.Backend) backends.Backend {
	return newIndexed(b, indexTagsSkipSetMulti)
}

// ListSkipsEmpty is WithIndex whose List skips entries with an empty payload
// (it takes them for deletion markers).
func ListSkipsEmpty(b backends.Backend) backends.Backend { return newIndexed(b, indexListSkipsEmpty) }

// ShortMultiResult is WithIndex whose GetMulti returns one result fewer than
// the keys it was asked for.
func ShortMultiResult(b backends.Backend) backends.Backend { return newIndexed(b, indexShortMulti) }

type indexed struct {
	wrapped
	fault indexFault

	mu      sync.Mutex
	index   map[string]backends.EntryInfo
	entries int64 // the counters StorageStats reports
	bytes   int64
}

func newIndexed(b backends.Backend, f indexFault) *indexed {
	return &indexed{wrapped: wrapped{b}, fault: f, index: map[string]backends.EntryInfo{}}
}

// record notes key's new entry (nil: deleted) under ix.mu.
func (ix *indexed) record(key string, e *backends.Entry, tags bool) {
	if old, ok := ix.index[key]; ok {
		ix.entries--
		ix.bytes -= old.Size
		delete(ix.index, key)
	}
	if e == nil {
		return
	}
	in := backends.EntryInfo{Key: key, Size: int64(len(e.Payload)), Created: e.Created, Version: e.Version}
	if tags {
		in.Tags = slices.Clone(e.Tags)
	}
	ix.index[key] = in
	ix.entries++
	ix.bytes += in.Size
}

func (ix *indexed) Set(ctx context.Context, k string, e backends.Entry) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.b.Set(ctx, k, e); err != nil {
		return err
	}
	ix.record(k, &e, true)
	return nil
}

func (ix *indexed) Delete(ctx context.Context, k string) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.b.Delete(ctx, k); err != nil {
		return err
	}
	ix.record(k, nil, true)
	return nil
}

func (ix *indexed) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	out, err := backends.GetMulti(ctx, ix.b, keys)
	if err == nil && ix.fault == indexShortMulti && len(out) > 0 {
		out = out[:len(out)-1]
	}
	return out, err
}

func (ix *indexed) SetMulti(ctx context.Context, keys []string, es []backends.Entry) error {
	if len(keys) != len(es) {
		return fmt.Errorf("SetMulti: %d keys, %d entries: %w", len(keys), len(es), backends.ErrBadArgument)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i, k := range keys {
		if err := ix.b.Set(ctx, k, es[i]); err != nil {
			return err
		}
		ix.record(k, &es[i], ix.fault != indexTagsSkipSetMulti)
	}
	return nil
}

func (ix *indexed) DeleteMulti(ctx context.Context, keys []string) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, k := range keys {
		if err := ix.b.Delete(ctx, k); err != nil {
			return err
		}
		ix.record(k, nil, true)
	}
	return nil
}

func (ix *indexed) EvictTag(ctx context.Context, tag string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, err := ix.b.Get(ctx, "\x00closed?"); errors.Is(err, backends.ErrClosed) {
		return 0, err
	}
	n := 0
	for k, in := range ix.index {
		if !slices.Contains(in.Tags, tag) {
			continue
		}
		if err := ix.b.Delete(ctx, k); err != nil {
			return n, err
		}
		if ix.fault == indexStatsSkipEvict {
			delete(ix.index, k) // the counters are left as they were
		} else {
			ix.record(k, nil, true)
		}
		n++
	}
	return n, nil
}

func (ix *indexed) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	if _, err := ix.b.Get(ctx, "\x00closed?"); errors.Is(err, backends.ErrClosed) {
		return err
	}
	ix.mu.Lock()
	infos := make([]backends.EntryInfo, 0, len(ix.index))
	for _, in := range ix.index {
		if ix.fault == indexListSkipsEmpty && in.Size == 0 {
			continue
		}
		in.Tags = slices.Clone(in.Tags)
		infos = append(infos, in)
	}
	ix.mu.Unlock()
	for _, in := range infos {
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

func (ix *indexed) StorageStats(ctx context.Context) (backends.Stats, error) {
	if _, err := ix.b.Get(ctx, "\x00closed?"); errors.Is(err, backends.ErrClosed) {
		return backends.Stats{}, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return backends.Stats{Entries: ix.entries, Bytes: ix.bytes}, nil
}
