// Package filesystem is the regioncache backend that keeps encoded values in
// files, registered as "filesystem". It is the successor of Python
// dogpile_filesystem's "paylogic.filesystem" and takes the same arguments.
//
// Each entry is one self-describing file (key, creation time, schema
// version, tags, payload length, payload, checksum) named by a hash of its
// key in one of 256 shard directories. A write goes to a temporary file in
// the entry's shard and is renamed into place once, so readers (which take no
// lock) see the old entry or the new one. A truncated, corrupt or older-format
// file is a miss and is deleted. cache_size is enforced with an incrementally
// maintained size counter and sampled, approximately-LRU eviction whose cost
// does not grow with the number of entries.
//
// Arguments:
//
//	base_dir          string    cache directory (required; created 0700)
//	cache_size        size      bytes or "1GiB"; evict least recently used
//	                            entries beyond it (default 0: unbounded)
//	expiration_time   duration  storage TTL: entries older than this are
//	                            deleted when read (default 0: never)
//	distributed_lock  bool      dogpile locks exclude other processes
//	                            (file locks; default true)
//	sync              bool      fsync each entry and its directory (default false)
//
// See docs/backends.md for the on-disk format, crash behaviour and locking.
package filesystem

import (
	"context"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/lock"
)

func init() {
	backends.Register("filesystem", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Backend is the filesystem backend. Its methods are safe for concurrent use
// by many goroutines and many processes on one base_dir.
type Backend struct {
	a *fsstore.Adapter // KindValue; the engine shared with rawfs
}

// Open opens a filesystem backend configured by args (see the package doc).
func Open(args backends.Args) (*Backend, error) {
	a, err := fsstore.OpenAdapter("filesystem", fsstore.KindValue, args)
	if err != nil {
		return nil, err
	}
	return &Backend{a}, nil
}

// Store returns the underlying store (for the command-line tools).
func (b *Backend) Store() *fsstore.Store { return b.a.Store() }

// Get implements backends.Backend. The payload is read with one open, fstat
// and read of the entry file and is not shared with anything else.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	return b.a.Get(ctx, key)
}

// Set implements backends.Backend.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	return b.a.Set(ctx, key, e)
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error { return b.a.Delete(ctx, key) }

// Close implements backends.Backend.
func (b *Backend) Close() error { return b.a.Close() }

// Locker implements backends.Locking: with distributed_lock (the default),
// the directory's file lock, which excludes every process using the
// directory; without it, nil, and regions lock in-process only.
func (b *Backend) Locker() lock.Locker { return b.a.Locker() }

// StorageTTL implements backends.StorageExpirer (expiration_time).
func (b *Backend) StorageTTL() time.Duration { return b.a.StorageTTL() }

// EvictTag implements backends.TagEvicter.
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	return b.a.EvictTag(ctx, tag)
}

// List implements backends.Lister.
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	return b.a.List(ctx, fn)
}

// StorageStats implements backends.StatReporter by scanning the directory.
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	return b.a.StorageStats(ctx)
}
