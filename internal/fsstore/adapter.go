package fsstore

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// Adapter is a backends.Backend over a Store: the one implementation behind
// the registered filesystem (KindValue) and rawfs (KindFile) backends, whose
// exported Backend types forward to it. It parses the arguments, opens the
// store, chooses the store's value or file operations by kind and implements
// the optional interfaces both backends declare. Every error it returns is
// prefixed with the backend's registered name ("filesystem: ...", "rawfs:
// ..."). Its methods are safe for concurrent use by many goroutines and many
// processes on one base_dir.
type Adapter struct {
	name string
	s    *Store
	cfg  Config
}

// OpenAdapter parses args for kind (ParseArgs: unknown arguments and bad
// values are errors naming the argument) and opens the store on base_dir.
// name is the registered backend name, which prefixes every error.
func OpenAdapter(name string, kind byte, args backends.Args) (*Adapter, error) {
	a := &Adapter{name: name}
	var err error
	if a.cfg, err = ParseArgs(args, kind); err != nil {
		return nil, a.wrap(err)
	}
	if a.s, err = Open(a.cfg.Options); err != nil {
		return nil, a.wrap(err)
	}
	return a, nil
}

// wrap prefixes a non-nil err with the backend's name; nil stays nil.
func (a *Adapter) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", a.name, err)
}

// Store returns the underlying store.
func (a *Adapter) Store() *Store { return a.s }

// Get implements backends.Backend: for KindValue the entry file's payload,
// read with one open, fstat and read and shared with nothing else; for
// KindFile the data file's contents.
func (a *Adapter) Get(ctx context.Context, key string) (backends.Entry, error) {
	if a.cfg.Kind == KindFile {
		e, err := a.s.GetBytes(ctx, key)
		return e, a.wrap(err)
	}
	e, err := a.s.Get(ctx, key)
	return e, a.wrap(err)
}

// Set implements backends.Backend: for KindValue the payload is written into
// the entry file; for KindFile it becomes the data file.
func (a *Adapter) Set(ctx context.Context, key string, e backends.Entry) error {
	if a.cfg.Kind == KindFile {
		return a.wrap(a.s.StoreBytes(ctx, key, e))
	}
	return a.wrap(a.s.Put(ctx, key, e, e.Payload))
}

// Delete implements backends.Backend.
func (a *Adapter) Delete(ctx context.Context, key string) error {
	return a.wrap(a.s.Delete(ctx, key))
}

// Close implements backends.Backend.
func (a *Adapter) Close() error { return a.wrap(a.s.Close()) }

// OpenFile implements backends.FileStore (KindFile).
func (a *Adapter) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	f, e, err := a.s.OpenFile(ctx, key)
	if err != nil {
		return nil, e, a.wrap(err)
	}
	return f, e, nil
}

// StoreFile implements backends.FileStore (KindFile): f is renamed into the
// store when move is set and file_movable allows it (the rename falls back to
// a copy across filesystems), and copied otherwise. f is not closed.
func (a *Adapter) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	return a.wrap(a.s.StoreFile(ctx, key, f, e, move && a.cfg.FileMovable))
}

// StoreFileOpen is StoreFile that also returns a read-only file on the bytes
// it stored, opened before the store committed them (Store.StoreFileOpen).
func (a *Adapter) StoreFileOpen(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) (*os.File, error) {
	stored, err := a.s.StoreFileOpen(ctx, key, f, e, move && a.cfg.FileMovable)
	return stored, a.wrap(err)
}

// CreateTemp implements backends.TempFiler: a temporary file in base_dir/tmp
// (Store.CreateTemp).
func (a *Adapter) CreateTemp(pattern string) (*os.File, error) {
	f, err := a.s.CreateTemp(pattern)
	return f, a.wrap(err)
}

// Locker implements backends.Locking: with distributed_lock, the directory's
// file lock; without it, nil (regions lock in-process only).
func (a *Adapter) Locker() lock.Locker {
	if !a.cfg.DistributedLock {
		return nil
	}
	return a.s.Locker()
}

// StorageTTL implements backends.StorageExpirer (expiration_time).
func (a *Adapter) StorageTTL() time.Duration { return a.cfg.TTL }

// EvictTag implements backends.TagEvicter.
func (a *Adapter) EvictTag(ctx context.Context, tag string) (int, error) {
	n, err := a.s.EvictTag(ctx, tag)
	return n, a.wrap(err)
}

// List implements backends.Lister.
func (a *Adapter) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	return a.wrap(a.s.List(ctx, func(e EntryInfo) error { return fn(e.EntryInfo) }))
}

// StorageStats implements backends.StatReporter by scanning the directory.
func (a *Adapter) StorageStats(ctx context.Context) (backends.Stats, error) {
	st, err := a.s.Stats(ctx)
	return st, a.wrap(err)
}
