// Package rawfs is the regioncache backend whose values are files, registered
// as "rawfs" (Python dogpile_filesystem's "paylogic.raw_filesystem").
//
// With region.GetOrCreateFile the creator returns an *os.File; the backend
// renames it into the cache when the call allows it (region.MoveFile) and
// file_movable is on (the default; a copy across filesystems), and otherwise
// copies it (a reflink clone where the filesystem offers one, else
// copy_file_range through io.Copy). Readers get a read-only *os.File on
// exactly the creator's bytes, whose path and size can be handed to other
// programs; memory use does not depend on the file size. CreateTemp gives a
// creator a temporary file inside base_dir, so that a move is always a rename.
//
// Each entry is a data file plus a small self-describing metadata file (key,
// creation time, version, tags, data file name and size, checksum). The data
// file is placed under a fresh name first and the metadata file is renamed
// over the old one: that one rename commits data and metadata together.
//
// Arguments are those of the filesystem backend (base_dir, cache_size,
// expiration_time, distributed_lock, sync) plus:
//
//	file_movable  bool  rename creators' files into the cache when the call
//	                    permits a move (region.MoveFile); false always
//	                    copies (default true)
//
// Get and Set also work, with the payload bytes as the file's contents.
package rawfs

import (
	"context"
	"os"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/lock"
)

func init() {
	backends.Register("rawfs", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Backend is the rawfs backend. Its methods are safe for concurrent use by
// many goroutines and many processes on one base_dir.
type Backend struct {
	a *fsstore.Adapter // KindFile; the engine shared with filesystem
}

// Open opens a rawfs backend configured by args (see the package doc).
func Open(args backends.Args) (*Backend, error) {
	a, err := fsstore.OpenAdapter("rawfs", fsstore.KindFile, args)
	if err != nil {
		return nil, err
	}
	return &Backend{a}, nil
}

// Store returns the underlying store (for the command-line tools).
func (b *Backend) Store() *fsstore.Store { return b.a.Store() }

// Get implements backends.Backend: the payload is the data file's contents.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	return b.a.Get(ctx, key)
}

// Set implements backends.Backend: the payload becomes the data file.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	return b.a.Set(ctx, key, e)
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error { return b.a.Delete(ctx, key) }

// Close implements backends.Backend.
func (b *Backend) Close() error { return b.a.Close() }

// OpenFile implements backends.FileStore.
func (b *Backend) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	return b.a.OpenFile(ctx, key)
}

// StoreFile implements backends.FileStore. The file is renamed into the cache
// when the caller permits it (move, e.g. region.MoveFile) and the backend
// allows it (file_movable, the default); the rename falls back to a copy
// across filesystems. Otherwise it is copied. f is not closed.
func (b *Backend) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	return b.a.StoreFile(ctx, key, f, e, move)
}

// CreateTemp implements backends.TempFiler: a temporary file in base_dir/tmp,
// on the cache's own filesystem. It carries its creator's flock while open;
// once closed unused (or its process dead) it is swept 2s after its last
// write on Linux, an hour elsewhere.
func (b *Backend) CreateTemp(pattern string) (*os.File, error) { return b.a.CreateTemp(pattern) }

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

// List implements backends.Lister. Size is the data file's size.
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	return b.a.List(ctx, fn)
}

// StorageStats implements backends.StatReporter by scanning the directory.
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	return b.a.StorageStats(ctx)
}
