// Package brokentest provides deliberately broken regioncache backends: the
// memory backend (or, for faults of shared storage, DirStore: a file per key
// shared by every instance on one directory) wrapped so that it breaks one
// rule of the backend contract each. They prove that the conformance suite catches what it claims to
// catch (every Fault names the check that must fail on it), and they serve
// anyone who needs a backend known to be wrong, such as a test of the
// conformance command run against a plugin.
//
// The package also provides correct wrappers (Correct) that add a capability
// to the memory backend — a lock, a fenced store, a storage TTL, file
// streaming, values kept as files, an index for multi operations, tags,
// listing and statistics, shared storage — so that the suite's checks can be
// seen to pass on a right implementation as well as fail on a wrong one.
//
// Nothing here is for production use.
package brokentest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/lock"
)

// LargeValueThreshold is the payload size above which DropsLargeValues drops
// a write: 1 MiB.
const LargeValueThreshold = 1 << 20

// Env is what a wrapper may need besides the backend it wraps.
type Env struct {
	// Dir is the directory the instance was opened on.
	Dir string
	// Locks is one keyed lock shared by every instance opened on Dir, so that
	// a lock built on it excludes across instances as a backend's lock must.
	Locks *lock.Keyed
	// TTL is the storage TTL asked for (Harness.OpenWithTTL); zero for none.
	TTL time.Duration
}

// Fault is one way of breaking a backend.
type Fault struct {
	// Name is a short identifier, such as "drops-large-values".
	Name string
	// Check is the name of the conformance check that must fail on it
	// (empty for the correct wrappers returned by Correct).
	Check string
	// Description says what the wrapper does wrong (or right).
	Description string
	// Wrap wraps b, typically a memory backend.
	Wrap func(b backends.Backend, env Env) backends.Backend
	// LockEndsWithContext is copied to the harness: the wrapper claims a
	// lock that is freed when its owner's context ends.
	LockEndsWithContext bool
}

// Faults returns the deliberately broken wrappers, each with the check that
// must catch it.
func Faults() []Fault {
	return []Fault{
		{Name: "drops-large-values", Check: "roundtrip/large", Description: "silently drops writes whose payload exceeds 1 MiB",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return DropsLargeValues(b) }},
		{Name: "recycles-payloads", Check: "roundtrip/read-only", Description: "declares ReadOnlyPayloads but serves payloads from an arena of its own that Close wipes, like slices of a mapping it unmaps",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return RecyclesPayloads(b) }},
		{Name: "ignores-delete", Check: "delete/present", Description: "Delete reports success and deletes nothing",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return IgnoresDelete(b) }},
		{Name: "loses-metadata", Check: "metadata", Description: "keeps Created to the microsecond only and drops Tags",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return LosesMetadata(b) }},
		{Name: "swaps-values", Check: "concurrent", Description: "under concurrent use, Get returns the entry last written under any key",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return SwapsValuesUnderConcurrency(b) }},
		{Name: "non-exclusive-lock", Check: "lock/exclusive", Description: "declares a lock that never excludes anybody",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return NonExclusiveLock(b) }},
		{Name: "ignores-close", Check: "close/methods", Description: "Close does nothing: the backend keeps working",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return IgnoresClose(b) }},
		{Name: "ignores-context", Check: "lock/cancel", Description: "its lock waits for a held key even after the caller's context ends",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return IgnoresContext(b, env.Locks) }},
		{Name: "never-expires", Check: "expiry", Description: "declares a storage TTL and never expires anything",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return NeverExpires(b, env.TTL) }},
		{Name: "lock-outlives-context", Check: "lock/owner-context", LockEndsWithContext: true,
			Description: "claims a lock freed when its owner's context ends, but keeps it until Unlock",
			Wrap:        func(b backends.Backend, env Env) backends.Backend { return WithLock(b, env.Locks) }},
		{Name: "naive-file-names", Check: "keys/hostile", Description: "also writes each value to the file dir/key, so that \"../x\" escapes dir",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WritesOutsideDir(b, env.Dir) }},
		{Name: "truncates-files", Check: "files/copy", Description: "StoreFile reads the file from its current offset instead of from the start",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return TruncatesFiles(b, env.Dir) }},
		{Name: "stats-miss-evicttag", Check: "read-paths", Description: "StorageStats counters are not updated by EvictTag",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return StatsMissEvictTag(b) }},
		{Name: "tags-skip-setmulti", Check: "read-paths", Description: "SetMulti does not record the tags of what it writes, so EvictTag misses them",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return TagsSkipSetMulti(b) }},
		{Name: "list-skips-empty", Check: "read-paths", Description: "List skips entries with an empty payload",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return ListSkipsEmpty(b) }},
		{Name: "short-multi-result", Check: "multi/native", Description: "GetMulti returns one result fewer than the keys asked for",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return ShortMultiResult(b) }},
		{Name: "caches-reads", Check: "shared-storage", Description: "shared storage with a per-instance cache of reads: another instance's overwrite or delete of a key already read is not seen",
			Wrap: func(b backends.Backend, env Env) backends.Backend { b.Close(); return CachesReads(env.Dir) }},
		{Name: "loses-concurrent-updates", Check: "concurrent/own-keys", Description: "a copy-on-write map replaced without compare-and-swap: overlapping writers on distinct keys lose each other's updates",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return LosesConcurrentUpdates(b) }},
		{Name: "lock-key-folds", Check: "lock/keys", Description: "its lock identifies a key by its lower-cased first 64 bytes",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return FoldsLockKeys(b, env.Locks) }},
		{Name: "leaks-lock-on-ended-context", Check: "lock/after-failure", Description: "Lock with an ended context takes the key and returns the context's error without releasing it",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return LeaksLockOnEndedContext(b, env.Locks) }},
		{Name: "unfenced-set", Check: "lock/fenced", Description: "declares FencedSetter but SetFenced stores whether or not the lock is still held",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return UnfencedSet(b, env.Locks) }},
		{Name: "created-unixnano", Check: "metadata/extremes", Description: "keeps Created as int64 Unix nanoseconds, which cannot hold the zero time or years outside 1678-2262",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return CreatedAsUnixNano(b) }},
		{Name: "caps-tags", Check: "metadata/extremes", Description: "keeps at most 16 tags of an entry",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return CapsTags(b) }},
		{Name: "links-instead-of-copy", Check: "files/copy", Description: "StoreFile(move=false) hard-links the caller's file into the store, so the caller's later writes change the stored value",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return LinksInsteadOfCopy(b, env.Dir) }},
		{Name: "writable-open-file", Check: "files/read-only", Description: "OpenFile opens the stored file read-write: a caller can change the cached value through it",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WritableOpenFile(b, env.Dir) }},
		{Name: "temp-outside-storage", Check: "files/temp", Description: "CreateTemp creates its file in the system's temporary directory, not in the backend's storage",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return TempOutsideStorage(b, env.Dir) }},
		{Name: "close-panics", Check: "close/idempotent", Description: "Close panics",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return ClosePanics(b) }},
	}
}

// Correct returns wrappers that add a capability to a backend correctly;
// the suite must pass them.
func Correct() []Fault {
	return []Fault{
		{Name: "keyed-lock", Check: "", Description: "a lock (lock.Keyed shared by the instances on one directory)",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WithLock(b, env.Locks) }},
		{Name: "context-lock", LockEndsWithContext: true,
			Description: "a lock freed when the context it was taken with ends",
			Wrap:        func(b backends.Backend, env Env) backends.Backend { return WithContextLock(b, env.Locks) }},
		{Name: "storage-ttl", Check: "", Description: "storage expiry judged from the time of each write",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WithStorageTTL(b, env.TTL) }},
		{Name: "files", Check: "", Description: "file streaming through temporary files in the instance's directory",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WithFiles(b, env.Dir) }},
		{Name: "indexed", Description: "multi operations, tags, listing and storage statistics on an index kept beside the store",
			Wrap: func(b backends.Backend, _ Env) backends.Backend { return WithIndex(b) }},
		{Name: "fenced-lock", Description: "a lock with a fenced store (FencedSetter)",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WithFencedLock(b, env.Locks) }},
		{Name: "shared-dir", Description: "storage shared by every instance on one directory: a file per key, renamed into place",
			Wrap: func(b backends.Backend, env Env) backends.Backend { b.Close(); return DirStore(env.Dir) }},
		{Name: "stored-files", Description: "values kept as files in the instance's directory: OpenFile read-only, StoreFile copying or renaming, CreateTemp in the store",
			Wrap: func(b backends.Backend, env Env) backends.Backend { return WithStoredFiles(b, env.Dir) }},
	}
}

// Lookup returns the fault or correct wrapper called name.
func Lookup(name string) (Fault, bool) {
	for _, f := range append(Faults(), Correct()...) {
		if f.Name == name {
			return f, true
		}
	}
	return Fault{}, false
}

// Opener returns a function that opens instances of f: each a fresh memory
// backend (with copy_values, since the wrappers do not declare keeps-values)
// wrapped by f, given Env{Dir: dir, TTL: ttl}. Instances that one Opener
// opens on the same dir share Env.Locks. It is safe for concurrent use.
// Harness opens its instances with it, and so does a plugin serving f (the
// test plugin of package plugins).
func (f Fault) Opener() func(dir string, ttl time.Duration) (backends.Backend, error) {
	var mu sync.Mutex
	locks := map[string]*lock.Keyed{}
	return func(dir string, ttl time.Duration) (backends.Backend, error) {
		mu.Lock()
		k := locks[dir]
		if k == nil {
			k = lock.NewKeyed()
			locks[dir] = k
		}
		mu.Unlock()
		m, err := memory.Open(backends.Args{"copy_values": true})
		if err != nil {
			return nil, err
		}
		return f.Wrap(m, Env{Dir: dir, Locks: k, TTL: ttl}), nil
	}
}

// Harness returns a conformance harness that opens instances of f as
// Opener does. The harness has OpenWithTTL only if f declares storage expiry
// when given a TTL.
func (f Fault) Harness() conformance.Harness {
	open := f.Opener()
	h := conformance.Harness{
		Name:                f.Name,
		LockEndsWithContext: f.LockEndsWithContext,
		Open:                func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
	}
	if backends.StorageTTL(f.Wrap(memory.New(), Env{Locks: lock.NewKeyed(), TTL: time.Second})) > 0 {
		h.OpenWithTTL = func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		}
	}
	return h
}

// wrapped forwards the four Backend methods and hides every optional
// interface of the backend it wraps, so that callers use the one-key
// fallbacks and see no capabilities the wrapper does not declare itself.
type wrapped struct{ b backends.Backend }

func (w *wrapped) Get(ctx context.Context, k string) (backends.Entry, error) { return w.b.Get(ctx, k) }
func (w *wrapped) Set(ctx context.Context, k string, e backends.Entry) error {
	return w.b.Set(ctx, k, e)
}
func (w *wrapped) Delete(ctx context.Context, k string) error { return w.b.Delete(ctx, k) }
func (w *wrapped) Close() error                               { return w.b.Close() }

// ProcessLocal passes on the wrapped backend's declaration: the harness gives
// every instance its own memory backend, which no other instance sees.
func (w *wrapped) ProcessLocal() bool { return !backends.IsShared(w.b) }

// DropsLargeValues returns b with writes of payloads above
// LargeValueThreshold silently dropped (the key is left absent).
func DropsLargeValues(b backends.Backend) backends.Backend { return &dropsLarge{wrapped{b}} }

type dropsLarge struct{ wrapped }

func (d *dropsLarge) Set(ctx context.Context, k string, e backends.Entry) error {
	if len(e.Payload) > LargeValueThreshold {
		return d.b.Delete(ctx, k)
	}
	return d.b.Set(ctx, k, e)
}

// RecyclesPayloads returns b declaring backends.ReadOnlyPayloads while its
// Get returns slices of an arena of its own, which Close wipes: a payload
// held past Close changes, as one pointing into a memory mapping would.
func RecyclesPayloads(b backends.Backend) backends.Backend { return &recycles{wrapped: wrapped{b}} }

type recycles struct {
	wrapped
	mu    sync.Mutex
	arena [][]byte
}

func (r *recycles) Get(ctx context.Context, k string) (backends.Entry, error) {
	e, err := r.b.Get(ctx, k)
	if err != nil {
		return e, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := append([]byte(nil), e.Payload...)
	r.arena = append(r.arena, p)
	e.Payload = p
	return e, nil
}

func (r *recycles) Close() error {
	r.mu.Lock()
	for _, p := range r.arena {
		clear(p)
	}
	r.arena = nil
	r.mu.Unlock()
	return r.b.Close()
}

func (r *recycles) ReadOnlyPayloads() bool { return true }

// IgnoresDelete returns b with a Delete that does nothing and reports success.
func IgnoresDelete(b backends.Backend) backends.Backend { return &ignoresDelete{wrapped{b}} }

type ignoresDelete struct{ wrapped }

func (d *ignoresDelete) Delete(ctx context.Context, k string) error { return nil }

// LosesMetadata returns b keeping Created to the microsecond only and
// dropping Tags, like a careless serialisation.
func LosesMetadata(b backends.Backend) backends.Backend { return &losesMeta{wrapped{b}} }

type losesMeta struct{ wrapped }

func (l *losesMeta) Set(ctx context.Context, k string, e backends.Entry) error {
	e.Created = e.Created.Truncate(time.Microsecond)
	e.Tags = nil
	return l.b.Set(ctx, k, e)
}

// SwapsValuesUnderConcurrency returns b whose Get, when it overlaps another
// operation, returns the entry most recently written under any key. Used
// from one goroutine it behaves.
func SwapsValuesUnderConcurrency(b backends.Backend) backends.Backend {
	return &swaps{wrapped: wrapped{b}}
}

type swaps struct {
	wrapped
	inflight atomic.Int64
	last     atomic.Pointer[backends.Entry]
}

func (s *swaps) Get(ctx context.Context, k string) (backends.Entry, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	runtime.Gosched()
	if s.inflight.Load() > 1 {
		if e := s.last.Load(); e != nil {
			return *e, nil
		}
	}
	return s.b.Get(ctx, k)
}

func (s *swaps) Set(ctx context.Context, k string, e backends.Entry) error {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	c := e
	c.Payload = slices.Clone(e.Payload)
	s.last.Store(&c)
	return s.b.Set(ctx, k, e)
}

// IgnoresClose returns b with a Close that does nothing.
func IgnoresClose(b backends.Backend) backends.Backend { return &ignoresClose{wrapped{b}} }

type ignoresClose struct{ wrapped }

func (c *ignoresClose) Close() error { return nil }

// withLocker declares a lock (backends.Locking) with the given locker.
type withLocker struct {
	wrapped
	l lock.Locker
}

func (w *withLocker) Locker() lock.Locker { return w.l }

// WithLock returns b with a correct lock: keyed, shared by every instance
// given the same *lock.Keyed.
func WithLock(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &withLocker{wrapped{b}, k}
}

// NonExclusiveLock returns b declaring a lock whose Lock and TryLock always
// succeed at once, however many hold the key.
func NonExclusiveLock(b backends.Backend) backends.Backend {
	return &withLocker{wrapped{b}, fakeLocker{}}
}

type fakeLocker struct{}

func (fakeLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	return &onceHandle{}, nil
}
func (fakeLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return &onceHandle{}, true, nil
}

type onceHandle struct{ released atomic.Bool }

func (h *onceHandle) Unlock() error {
	if h.released.Swap(true) {
		return lock.ErrReleased
	}
	return nil
}

// IgnoresContext returns b declaring a lock built on k whose Lock waits for a
// held key even after the caller's context has ended.
func IgnoresContext(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &withLocker{wrapped{b}, ctxIgnorer{k}}
}

type ctxIgnorer struct{ k *lock.Keyed }

func (c ctxIgnorer) Lock(ctx context.Context, key string) (lock.Handle, error) {
	return c.k.Lock(context.WithoutCancel(ctx), key)
}
func (c ctxIgnorer) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return c.k.TryLock(ctx, key)
}

// WithContextLock returns b with a lock built on k that is also freed when
// the context it was taken with ends; the owner's later Unlock then reports
// lock.ErrLost. Taking it with a context that has already ended fails with
// the context's error.
func WithContextLock(b backends.Backend, k *lock.Keyed) backends.Backend {
	return &withLocker{wrapped{b}, ctxLocker{k}}
}

type ctxLocker struct{ k *lock.Keyed }

func (c ctxLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := c.k.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return watch(ctx, h), nil
}

func (c ctxLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	h, ok, err := c.k.TryLock(ctx, key)
	if err != nil || !ok {
		return nil, ok, err
	}
	return watch(ctx, h), true, nil
}

// ctxHandle is a held lock that its context's end releases.
type ctxHandle struct {
	inner lock.Handle
	stop  chan struct{}
	mu    sync.Mutex
	state int // 0 held, 1 released by Unlock, 2 lost to the context
}

func watch(ctx context.Context, h lock.Handle) *ctxHandle {
	ch := &ctxHandle{inner: h, stop: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			ch.mu.Lock()
			if ch.state == 0 {
				ch.state = 2
				_ = ch.inner.Unlock()
			}
			ch.mu.Unlock()
		case <-ch.stop:
		}
	}()
	return ch
}

func (h *ctxHandle) Unlock() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case 1:
		return lock.ErrReleased
	case 2:
		h.state = 1
		return lock.ErrLost
	}
	h.state = 1
	close(h.stop)
	return h.inner.Unlock()
}

// WritesOutsideDir returns b that also writes each payload to the file
// filepath.Join(dir, key), the classic path-traversal bug: a key such as
// "../x" lands outside dir. Write errors are ignored; reads come from b.
func WritesOutsideDir(b backends.Backend, dir string) backends.Backend {
	return &naiveFiles{wrapped{b}, dir}
}

type naiveFiles struct {
	wrapped
	dir string
}

func (n *naiveFiles) Set(ctx context.Context, k string, e backends.Entry) error {
	if err := n.b.Set(ctx, k, e); err != nil {
		return err
	}
	p := filepath.Join(n.dir, k)
	if st, err := os.Stat(filepath.Dir(p)); err == nil && st.IsDir() {
		_ = os.WriteFile(p, e.Payload, 0o644)
	}
	return nil
}

// WithStorageTTL returns b retiring each entry ttl after it was written, and
// declaring CapStorageExpiry when ttl > 0.
func WithStorageTTL(b backends.Backend, ttl time.Duration) backends.Backend {
	return &ttlBackend{wrapped: wrapped{b}, ttl: ttl, expires: true, written: map[string]time.Time{}}
}

// NeverExpires returns b declaring a storage TTL of ttl that it never
// enforces.
func NeverExpires(b backends.Backend, ttl time.Duration) backends.Backend {
	return &ttlBackend{wrapped: wrapped{b}, ttl: ttl, written: map[string]time.Time{}}
}

type ttlBackend struct {
	wrapped
	ttl     time.Duration
	expires bool
	mu      sync.Mutex
	written map[string]time.Time
}

func (t *ttlBackend) StorageTTL() time.Duration { return t.ttl }

func (t *ttlBackend) Get(ctx context.Context, k string) (backends.Entry, error) {
	e, err := t.b.Get(ctx, k)
	if err != nil || t.ttl <= 0 || !t.expires {
		return e, err
	}
	t.mu.Lock()
	w, ok := t.written[k]
	t.mu.Unlock()
	if !ok || time.Since(w) >= t.ttl {
		return backends.Entry{}, fmt.Errorf("expired: %w", backends.ErrNotFound)
	}
	return e, nil
}

func (t *ttlBackend) Set(ctx context.Context, k string, e backends.Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock() // held across the write so that written matches the store
	if err := t.b.Set(ctx, k, e); err != nil {
		return err
	}
	t.written[k] = time.Now()
	return nil
}

// WithFiles returns b with file streaming: StoreFile reads the file into a
// payload, OpenFile writes the payload to a new file in dir.
func WithFiles(b backends.Backend, dir string) backends.Backend {
	return &fileBackend{wrapped: wrapped{b}, dir: dir}
}

// TruncatesFiles is WithFiles with a classic bug: StoreFile reads the file
// from its current offset rather than from the start, so a file the caller
// has just written is stored empty.
func TruncatesFiles(b backends.Backend, dir string) backends.Backend {
	return &fileBackend{wrapped: wrapped{b}, dir: dir, fromOffset: true}
}

type fileBackend struct {
	wrapped
	dir        string
	fromOffset bool
}

func (f *fileBackend) StoreFile(ctx context.Context, key string, file *os.File, e backends.Entry, move bool) error {
	var r io.Reader = io.NewSectionReader(file, 0, 1<<62)
	if f.fromOffset {
		r = file
	}
	p, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	e.Payload = p
	if err := f.b.Set(ctx, key, e); err != nil {
		return err
	}
	if move {
		_ = os.Remove(file.Name())
	}
	return nil
}

func (f *fileBackend) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	e, err := f.b.Get(ctx, key)
	if err != nil {
		return nil, backends.Entry{}, err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, backends.Entry{}, err
	}
	tmp, err := os.CreateTemp(f.dir, "open-*")
	if err != nil {
		return nil, backends.Entry{}, err
	}
	_, werr := tmp.Write(e.Payload)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return nil, backends.Entry{}, err
	}
	r, err := os.Open(tmp.Name())
	if err != nil {
		return nil, backends.Entry{}, err
	}
	e.Payload = nil
	return r, e, nil
}
