package backends

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound is returned by Get when the key has no entry (or only an
	// entry the backend's own storage expiry has retired).
	ErrNotFound = errors.New("regioncache: not found")

	// ErrClosed is returned by every method of a backend after Close.
	ErrClosed = errors.New("regioncache: backend closed")

	// ErrUnsupported is returned when an optional operation is asked of a
	// backend that lacks it.
	ErrUnsupported = errors.New("regioncache: operation not supported by this backend")

	// ErrUnknownBackend is returned by Open for a name no backend is
	// registered under. Its message lists the registered names.
	ErrUnknownBackend = errors.New("regioncache: unknown backend")

	// ErrBadArgument is wrapped by every error about a backend argument: a
	// wrong type, an unparsable value or an unknown key.
	ErrBadArgument = errors.New("regioncache: bad backend argument")

	// ErrBadResult is wrapped by errors about a backend's reply that cannot
	// be right (a multi result of the wrong length, an entry that contradicts
	// its own metadata). Callers treat it as a failed call, never as data.
	ErrBadResult = errors.New("regioncache: impossible result from backend")
)

// Entry is one cached value with its metadata, as a backend stores it.
//
// A backend must hand back from Get exactly the Payload, Created, Version and
// Tags it was given by Set (Created to the nanosecond, unless the backend
// documents a coarser precision, which its conformance harness declares). Value is only meaningful to backends that keep Go values
// in-process (see ValueKeeper); every other backend ignores it and stores
// Payload.
type Entry struct {
	// Payload is the encoded value. A backend must not retain or modify the
	// slice after Set returns unless it declares ValueKeeper (in which case
	// the region never reuses it), and callers must not modify the slice
	// returned by Get.
	Payload []byte

	// Value is the unencoded Go value, set by the region only for backends
	// that report KeepsValues() == true.
	Value any

	// Created is when the value was created. Expiration is judged against it.
	Created time.Time

	// Version is the schema version of the writer.
	Version int

	// Tags are labels for EvictTag. Order is preserved.
	Tags []string
}

// Backend is the contract every store implements. All methods must be safe
// for concurrent use. Every method returns an error wrapping ErrClosed after
// Close, and honours ctx where it can block.
//
// Keys are arbitrary strings: any length, any bytes (including NUL, "/" and
// ".."). A backend that derives file names or other identifiers from keys must
// make distinct keys map to distinct storage and must never let a key reach
// outside its own storage.
type Backend interface {
	// Get returns the entry for key, or an error wrapping ErrNotFound. An
	// entry that cannot be read back intact (corrupt, truncated, written by
	// an incompatible format) is reported as ErrNotFound, never as a
	// different value.
	Get(ctx context.Context, key string) (Entry, error)

	// Set stores e under key, replacing any previous entry atomically:
	// concurrent readers see the old entry or the new one, never a mix.
	Set(ctx context.Context, key string, e Entry) error

	// Delete removes the entry for key. Deleting an absent key is not an
	// error.
	Delete(ctx context.Context, key string) error

	// Close releases the backend's resources. Close is idempotent: later
	// calls return nil.
	Close() error
}

// Factory opens a backend from its arguments. It must validate args and
// return an error wrapping ErrBadArgument that names the offending argument.
type Factory func(args Args) (Backend, error)

// MultiGetter is implemented by backends that read many keys in one
// operation. The result has one element per key, in order; nil marks a miss.
type MultiGetter interface {
	GetMulti(ctx context.Context, keys []string) ([]*Entry, error)
}

// MultiSetter is implemented by backends that write many entries in one
// operation. len(keys) == len(entries).
type MultiSetter interface {
	SetMulti(ctx context.Context, keys []string, entries []Entry) error
}

// MultiDeleter is implemented by backends that delete many keys in one
// operation. Absent keys are not an error.
type MultiDeleter interface {
	DeleteMulti(ctx context.Context, keys []string) error
}

// ValueKeeper is implemented by in-process backends that can store Go values
// unencoded (Entry.Value). When KeepsValues reports true the region skips the
// codec and stores the value itself.
type ValueKeeper interface {
	KeepsValues() bool
}

// Locking is implemented by backends that provide their own lock for dogpile
// locking, typically one that excludes other processes or machines sharing
// the storage. The region uses it instead of its in-process lock. The
// returned Locker must stay valid until the backend is closed.
type Locking interface {
	Locker() lock.Locker
}

// StorageExpirer is implemented by backends that retire entries on their own
// after a storage TTL (a Redis key TTL, a filesystem expiration_time). TTL
// reports that duration; zero means entries never expire in storage.
type StorageExpirer interface {
	StorageTTL() time.Duration
}

// TagEvicter is implemented by backends that can remove every entry carrying
// a tag. It returns how many entries were removed.
type TagEvicter interface {
	EvictTag(ctx context.Context, tag string) (int, error)
}

// EntryInfo describes a stored entry without its payload.
type EntryInfo struct {
	Key     string
	Size    int64 // payload bytes
	Created time.Time
	Version int
	Tags    []string
}

// Lister is implemented by backends that can enumerate their entries. fn is
// called once per entry, in no particular order; a non-nil error from fn
// stops the listing and is returned.
type Lister interface {
	List(ctx context.Context, fn func(EntryInfo) error) error
}

// Stats summarises a backend's storage.
type Stats struct {
	Entries int64
	Bytes   int64
}

// StatReporter is implemented by backends that can report their size.
type StatReporter interface {
	StorageStats(ctx context.Context) (Stats, error)
}

// FileStore is implemented by backends whose values are files (rawfs) or that
// stream values too large for memory (plugins).
type FileStore interface {
	// OpenFile returns a read-only file holding exactly the bytes stored
	// under key, and the entry's metadata (Payload nil). The caller closes
	// the file. A miss is ErrNotFound.
	OpenFile(ctx context.Context, key string) (*os.File, Entry, error)

	// StoreFile stores the contents of f (from offset 0) under key with the
	// metadata of e (e.Payload is ignored). If move is true the backend may
	// take the file itself (rename it into its storage), after which the
	// caller must not use f's path; f is never closed by StoreFile.
	StoreFile(ctx context.Context, key string, f *os.File, e Entry, move bool) error
}

// FileStoreOpener is implemented by file backends that can store a file and
// hand back a read-only file on exactly the stored bytes in one step, held
// across the store: unlike StoreFile followed by OpenFile, eviction or a
// concurrent writer between the two cannot take the bytes away, and a
// plugin need not send the file back. It returns an error wrapping
// ErrUnsupported when the instance cannot (the caller then falls back on
// StoreFile). On any other error nothing is stored and f is where it was.
type FileStoreOpener interface {
	StoreFileOpen(ctx context.Context, key string, f *os.File, e Entry, move bool) (*os.File, error)
}

// TempFiler is implemented by file backends that can create a temporary file
// on their own filesystem, so that a creator writing into it can have its
// file moved into the cache by a rename.
type TempFiler interface {
	CreateTemp(pattern string) (*os.File, error)
}
