package brokentest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// ---- locks ----

// LeaksLockOnEndedContext returns b with a lock built on k whose Lock, given
// a context that has already ended, takes the key and then returns the
// context's error without releasing it: the key stays locked for good.
func LeaksLockOnEndedContext(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &withLocker{wrapped{b}, leakyLocker{k}}
}

type leakyLocker struct{ k *lock.Keyed }

func (l leakyLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	if err := ctx.Err(); err != nil {
		_, _, _ = l.k.TryLock(context.Background(), key) // the leak
		return nil, err
	}
	return l.k.Lock(ctx, key)
}

func (l leakyLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return l.k.TryLock(ctx, key)
}

// FoldsLockKeys returns b with a lock built on k that identifies a key by its
// lower-cased first 64 bytes, so that distinct keys share one lock.
func FoldsLockKeys(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &withLocker{wrapped{b}, foldingLocker{k}}
}

type foldingLocker struct{ k *lock.Keyed }

func fold(key string) string {
	key = strings.ToLower(key)
	if len(key) > 64 {
		key = key[:64]
	}
	return key
}

func (f foldingLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	return f.k.Lock(ctx, fold(key))
}

func (f foldingLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return f.k.TryLock(ctx, fold(key))
}

// WithFencedLock returns b with a lock built on k and a correct
// backends.FencedSetter: SetFenced stores only while the handle, one of this
// instance's for that key, still holds the lock.
func WithFencedLock(b backends.Backend, k *lock.Keyed) backends.Backend {
	f := &fenced{wrapped: wrapped{b}, k: k}
	return f
}

// UnfencedSet returns b with a lock built on k and a SetFenced that ignores
// the handle: it stores whether or not the lock is still held.
func UnfencedSet(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &fenced{wrapped: wrapped{b}, k: k, unchecked: true}
}

type fenced struct {
	wrapped
	k         *lock.Keyed
	unchecked bool
	mu        sync.Mutex // makes the held check and the store one step
}

type fencedHandle struct {
	f     *fenced
	key   string
	inner lock.Handle
	held  bool // under f.mu
}

func (h *fencedHandle) Unlock() error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if !h.held {
		return lock.ErrReleased
	}
	h.held = false
	return h.inner.Unlock()
}

func (f *fenced) Locker() lock.Locker { return fencedLocker{f} }

type fencedLocker struct{ f *fenced }

func (l fencedLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	h, err := l.f.k.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return &fencedHandle{f: l.f, key: key, inner: h, held: true}, nil
}

func (l fencedLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	h, ok, err := l.f.k.TryLock(ctx, key)
	if err != nil || !ok {
		return nil, ok, err
	}
	return &fencedHandle{f: l.f, key: key, inner: h, held: true}, true, nil
}

func (f *fenced) SetFenced(ctx context.Context, key string, e backends.Entry, h lock.Handle) error {
	if f.unchecked {
		return f.b.Set(ctx, key, e)
	}
	fh, ok := h.(*fencedHandle)
	if !ok || fh.f != f || fh.key != key {
		return fmt.Errorf("SetFenced: not a handle of this backend's lock for that key: %w", backends.ErrUnsupported)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !fh.held {
		return fmt.Errorf("SetFenced: %w", lock.ErrLost)
	}
	return f.b.Set(ctx, key, e)
}

// ---- metadata ----

// CreatedAsUnixNano returns b keeping Created as Unix nanoseconds in an
// int64, which cannot hold dates before 1678 or after 2262 (nor the zero
// time).
func CreatedAsUnixNano(b backends.Backend) backends.Backend { return &unixNano{wrapped{b}} }

type unixNano struct{ wrapped }

func (u *unixNano) Set(ctx context.Context, k string, e backends.Entry) error {
	e.Created = time.Unix(0, e.Created.UnixNano())
	return u.b.Set(ctx, k, e)
}

// CapsTags returns b keeping at most the first 16 tags of an entry.
func CapsTags(b backends.Backend) backends.Backend { return &capsTags{wrapped{b}} }

type capsTags struct{ wrapped }

func (c *capsTags) Set(ctx context.Context, k string, e backends.Entry) error {
	if len(e.Tags) > 16 {
		e.Tags = e.Tags[:16]
	}
	return c.b.Set(ctx, k, e)
}

// ---- concurrency ----

// LosesConcurrentUpdates returns a store (b is used only for its closed
// state) that keeps entries in a copy-on-write map replaced without
// compare-and-swap: writers on distinct keys that overlap lose each other's
// updates. Used from one goroutine it behaves.
func LosesConcurrentUpdates(b backends.Backend) backends.Backend {
	c := &cow{wrapped: wrapped{b}}
	c.snap.Store(&map[string]backends.Entry{})
	return c
}

type cow struct {
	wrapped
	snap atomic.Pointer[map[string]backends.Entry]
}

func (c *cow) closed(ctx context.Context) error {
	if _, err := c.b.Get(ctx, "\x00closed?"); errors.Is(err, backends.ErrClosed) {
		return err
	}
	return nil
}

func (c *cow) update(k string, e *backends.Entry) {
	m := maps.Clone(*c.snap.Load())
	runtime.Gosched() // the window in which another writer's update is lost
	if e == nil {
		delete(m, k)
	} else {
		m[k] = *e
	}
	c.snap.Store(&m)
}

func (c *cow) Get(ctx context.Context, k string) (backends.Entry, error) {
	if err := c.closed(ctx); err != nil {
		return backends.Entry{}, err
	}
	e, ok := (*c.snap.Load())[k]
	if !ok {
		return backends.Entry{}, fmt.Errorf("cow: %w", backends.ErrNotFound)
	}
	return e, nil
}

func (c *cow) Set(ctx context.Context, k string, e backends.Entry) error {
	if err := c.closed(ctx); err != nil {
		return err
	}
	e.Payload = slices.Clone(e.Payload)
	e.Tags = slices.Clone(e.Tags)
	e.Value = nil
	c.update(k, &e)
	return nil
}

func (c *cow) Delete(ctx context.Context, k string) error {
	if err := c.closed(ctx); err != nil {
		return err
	}
	c.update(k, nil)
	return nil
}

// ---- robustness ----

// ClosePanics returns b whose Close panics.
func ClosePanics(b backends.Backend) backends.Backend { return &closePanics{wrapped{b}} }

type closePanics struct{ wrapped }

func (c *closePanics) Close() error {
	_ = c.b.Close()
	panic("brokentest: Close panics")
}

// ---- shared storage ----

// DirStore returns a correct store shared by every instance (in any process)
// opened on dir: one file per key, named by the key's SHA-256, written to a
// temporary file and renamed into place.
func DirStore(dir string) backends.Backend { return &dirStore{dir: filepath.Join(dir, "entries")} }

// CachesReads returns DirStore(dir) with a per-instance cache of what Get
// read, dropped only by the instance's own Set and Delete: another
// instance's later overwrite or delete is not seen once a key was read.
func CachesReads(dir string) backends.Backend {
	return &readCache{dirStore: dirStore{dir: filepath.Join(dir, "entries")}, cache: map[string]backends.Entry{}}
}

type dirStore struct {
	dir    string
	closed atomic.Bool
}

type dirRecord struct {
	Key     string
	Payload []byte
	Created time.Time
	Version int
	Tags    []string
}

func (d *dirStore) path(k string) string {
	s := sha256.Sum256([]byte(k))
	return filepath.Join(d.dir, hex.EncodeToString(s[:]))
}

func (d *dirStore) check(ctx context.Context) error {
	if d.closed.Load() {
		return fmt.Errorf("dirstore: %w", backends.ErrClosed)
	}
	return ctx.Err()
}

// ProcessLocal reports false: the files are shared.
func (d *dirStore) ProcessLocal() bool { return false }

func (d *dirStore) Get(ctx context.Context, k string) (backends.Entry, error) {
	if err := d.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	data, err := os.ReadFile(d.path(k))
	if errors.Is(err, os.ErrNotExist) {
		return backends.Entry{}, fmt.Errorf("dirstore: %w", backends.ErrNotFound)
	}
	if err != nil {
		return backends.Entry{}, err
	}
	var r dirRecord
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil || r.Key != k {
		return backends.Entry{}, fmt.Errorf("dirstore: unreadable entry: %w", backends.ErrNotFound)
	}
	return backends.Entry{Payload: r.Payload, Created: r.Created, Version: r.Version, Tags: r.Tags}, nil
}

func (d *dirStore) Set(ctx context.Context, k string, e backends.Entry) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(dirRecord{k, e.Payload, e.Created, e.Version, e.Tags}); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(buf.Bytes())
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), d.path(k))
}

func (d *dirStore) Delete(ctx context.Context, k string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if err := os.Remove(d.path(k)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (d *dirStore) Close() error { d.closed.Store(true); return nil }

type readCache struct {
	dirStore
	mu    sync.Mutex
	cache map[string]backends.Entry
}

func (r *readCache) Get(ctx context.Context, k string) (backends.Entry, error) {
	if err := r.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	r.mu.Lock()
	e, ok := r.cache[k]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := r.dirStore.Get(ctx, k)
	if err == nil {
		r.mu.Lock()
		r.cache[k] = e
		r.mu.Unlock()
	}
	return e, err
}

func (r *readCache) Set(ctx context.Context, k string, e backends.Entry) error {
	r.mu.Lock()
	delete(r.cache, k)
	r.mu.Unlock()
	return r.dirStore.Set(ctx, k, e)
}

func (r *readCache) Delete(ctx context.Context, k string) error {
	r.mu.Lock()
	delete(r.cache, k)
	r.mu.Unlock()
	return r.dirStore.Delete(ctx, k)
}

// ---- files kept as files ----

// fileFault selects the one mistake a storedFiles backend makes.
type fileFault int

const (
	filesCorrect     fileFault = iota
	filesLinkCopy              // StoreFile(move=false) hard-links the caller's file
	filesWritable              // OpenFile opens the stored file read-write
	filesTempOutside           // CreateTemp creates in the system's temporary directory
)

// WithStoredFiles returns b keeping each value also as a file under dir,
// with FileStore (OpenFile opens that file read-only; StoreFile copies or
// renames into it) and TempFiler (temporary files in dir).
func WithStoredFiles(b backends.Backend, dir string) backends.Backend {
	return &storedFiles{wrapped: wrapped{b}, dir: dir}
}

// LinksInsteadOfCopy is WithStoredFiles whose StoreFile(move=false)
// hard-links the caller's file into the store instead of copying it, so the
// caller's later writes change the stored value.
func LinksInsteadOfCopy(b backends.Backend, dir string) backends.Backend {
	return &storedFiles{wrapped: wrapped{b}, dir: dir, fault: filesLinkCopy}
}

// WritableOpenFile is WithStoredFiles whose OpenFile opens the stored file
// read-write, so that a caller can change the cached value through it.
func WritableOpenFile(b backends.Backend, dir string) backends.Backend {
	return &storedFiles{wrapped: wrapped{b}, dir: dir, fault: filesWritable}
}

// TempOutsideStorage is WithStoredFiles whose CreateTemp creates its file in
// the system's temporary directory, which may be another filesystem than the
// store, so that a move into the store is a copy.
func TempOutsideStorage(b backends.Backend, dir string) backends.Backend {
	return &storedFiles{wrapped: wrapped{b}, dir: dir, fault: filesTempOutside}
}

type storedFiles struct {
	wrapped
	dir   string
	fault fileFault
	mu    sync.Mutex
}

func (s *storedFiles) files() string { return filepath.Join(s.dir, "files") }

func (s *storedFiles) path(k string) string {
	sum := sha256.Sum256([]byte(k))
	return filepath.Join(s.files(), hex.EncodeToString(sum[:]))
}

func (s *storedFiles) closed(ctx context.Context) error {
	if _, err := s.b.Get(ctx, "\x00closed?"); errors.Is(err, backends.ErrClosed) {
		return err
	}
	return nil
}

// writeFile stores r's bytes as key's file and returns them.
func (s *storedFiles) writeFile(k string, r io.Reader) ([]byte, error) {
	if err := os.MkdirAll(s.files(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.files(), ".tmp-*")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, werr := io.Copy(f, io.TeeReader(r, &buf))
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	if err := os.Rename(f.Name(), s.path(k)); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *storedFiles) Set(ctx context.Context, k string, e backends.Entry) error {
	if err := s.closed(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.writeFile(k, bytes.NewReader(e.Payload)); err != nil {
		return err
	}
	return s.b.Set(ctx, k, e)
}

func (s *storedFiles) Delete(ctx context.Context, k string) error {
	if err := s.closed(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return s.b.Delete(ctx, k)
}

func (s *storedFiles) StoreFile(ctx context.Context, k string, f *os.File, e backends.Entry, move bool) error {
	if err := s.closed(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var payload []byte
	switch {
	case move && os.MkdirAll(s.files(), 0o755) == nil && os.Rename(f.Name(), s.path(k)) == nil:
		p, err := os.ReadFile(s.path(k))
		if err != nil {
			return err
		}
		payload = p
	case !move && s.fault == filesLinkCopy:
		if err := os.MkdirAll(s.files(), 0o755); err != nil {
			return err
		}
		_ = os.Remove(s.path(k))
		if err := os.Link(f.Name(), s.path(k)); err != nil {
			return err
		}
		p, err := os.ReadFile(s.path(k))
		if err != nil {
			return err
		}
		payload = p
	default:
		p, err := s.writeFile(k, io.NewSectionReader(f, 0, 1<<62))
		if err != nil {
			return err
		}
		payload = p
	}
	e.Payload = payload
	return s.b.Set(ctx, k, e)
}

func (s *storedFiles) OpenFile(ctx context.Context, k string) (*os.File, backends.Entry, error) {
	e, err := s.b.Get(ctx, k)
	if err != nil {
		return nil, backends.Entry{}, err
	}
	var f *os.File
	if s.fault == filesWritable {
		f, err = os.OpenFile(s.path(k), os.O_RDWR, 0)
	} else {
		f, err = os.Open(s.path(k))
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, backends.Entry{}, fmt.Errorf("storedfiles: %w", backends.ErrNotFound)
	}
	if err != nil {
		return nil, backends.Entry{}, err
	}
	e.Payload = nil
	return f, e, nil
}

func (s *storedFiles) CreateTemp(pattern string) (*os.File, error) {
	if s.fault == filesTempOutside {
		return os.CreateTemp("", pattern)
	}
	if err := os.MkdirAll(s.files(), 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(s.files(), pattern)
}
