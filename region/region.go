package region

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// Region is a cache region: a backend, a lock and the policy around them
// (expiration, codec, key mangling, versions). The zero value is not usable;
// create one with New (then Configure) or Open. A Region is safe for
// concurrent use.
type Region struct {
	base  []Option
	mu    sync.Mutex // serialises Configure and Close
	state atomic.Pointer[state]
}

// state is everything a configured region needs on its hot path. It never
// changes after Configure, except for the atomics.
type state struct {
	config
	backendName string
	backend     backends.Backend
	keepsValues bool
	shared      bool // other processes may write invalidation marks
	files       backends.FileStore
	lock        lock.Locker
	logger      *slog.Logger

	inv        atomic.Pointer[invalidations]
	refreshing atomic.Bool

	stats counters
	bg    sync.WaitGroup
}

// New returns an unconfigured region. opts apply to every later Configure. A
// region made by New is fine as a package-level variable: configure it once
// at start-up with Configure.
func New(opts ...Option) *Region {
	return &Region{base: opts}
}

// Open returns a region configured with the named backend; see Configure.
func Open(backend string, args backends.Args, opts ...Option) (*Region, error) {
	r := New()
	if err := r.Configure(backend, args, opts...); err != nil {
		return nil, err
	}
	return r, nil
}

// Configure opens the named backend with args and makes the region use it.
// It returns ErrAlreadyConfigured if the region is configured, an error
// wrapping ErrUnknownBackend (listing the known names) for an unknown
// backend, and the backend's own error (wrapping backends.ErrBadArgument) for
// bad arguments.
func (r *Region) Configure(backend string, args backends.Args, opts ...Option) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != nil {
		return ErrAlreadyConfigured
	}
	cfg, err := r.config(opts)
	if err != nil {
		return err
	}
	b, err := backends.Open(backend, args)
	if err != nil {
		return err
	}
	r.state.Store(newState(cfg, backend, b))
	return nil
}

// ConfigureBackend makes the region use an already opened backend, which the
// region then owns (Close closes it). It is for backends built in code rather
// than by name, and for tests.
func (r *Region) ConfigureBackend(b backends.Backend, opts ...Option) error {
	if b == nil {
		return fmt.Errorf("%w: ConfigureBackend: backend is nil", ErrBadOption)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != nil {
		return ErrAlreadyConfigured
	}
	cfg, err := r.config(opts)
	if err != nil {
		return err
	}
	r.state.Store(newState(cfg, fmt.Sprintf("%T", b), b))
	return nil
}

// config applies the region's base options, then opts, over the defaults.
func (r *Region) config(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range append(append([]Option(nil), r.base...), opts...) {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

func newState(cfg config, name string, b backends.Backend) *state {
	s := &state{config: cfg, backendName: name, backend: b}
	s.keepsValues = backends.KeepsValues(b)
	s.shared = backends.Has(b, backends.CapSharedStorage)
	if fs, ok := b.(backends.FileStore); ok && backends.Has(b, backends.CapFiles) {
		s.files = fs
	}
	s.lock = cfg.locker
	if s.lock == nil {
		s.lock = backends.LockerOf(b)
	}
	if s.lock == nil {
		s.lock = new(lock.Keyed)
	}
	s.logger = cfg.logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.name == "" {
		s.name = name
	}
	s.logger = s.logger.With("region", s.name)
	s.inv.Store(&invalidations{})
	return s
}

// Close waits for background regenerations to finish, then closes the
// backend. The region is unconfigured afterwards (operations return
// ErrNotConfigured) and may be configured again. Closing an unconfigured
// region returns nil.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Swap(nil)
	if s == nil {
		return nil
	}
	s.bg.Wait()
	return s.backend.Close()
}

// Backend returns the region's backend, or nil if it is not configured.
func (r *Region) Backend() backends.Backend {
	if s := r.state.Load(); s != nil {
		return s.backend
	}
	return nil
}

func (r *Region) load() (*state, error) {
	if s := r.state.Load(); s != nil {
		return s, nil
	}
	return nil, ErrNotConfigured
}

// Stats are a region's counters since it was configured.
type Stats struct {
	Hits        int64 // fresh values returned from the cache (also after waiting on a lock)
	Misses      int64 // calls that found nothing usable
	StaleServed int64 // stale values returned while another caller regenerated
	Creations   int64 // creator runs that succeeded
	LockWaits   int64 // calls that waited for another caller's lock
	Errors      int64 // creator failures and backend read failures
	WriteErrors int64 // created values that could not be stored (the calls succeeded)
}

type counters struct {
	hits, misses, stale, creations, waits, errors, writeErrors atomic.Int64
}

// Stats returns the region's counters. An unconfigured region reports zeros.
func (r *Region) Stats() Stats {
	s := r.state.Load()
	if s == nil {
		return Stats{}
	}
	c := &s.stats
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), StaleServed: c.stale.Load(),
		Creations: c.creations.Load(), LockWaits: c.waits.Load(), Errors: c.errors.Load(),
		WriteErrors: c.writeErrors.Load()}
}

// hit counts a hit. It is apart from event to keep the hit path short.
func (s *state) hit(key string) {
	s.stats.hits.Add(1)
	if s.observer != nil {
		s.observer(Event{Kind: EventHit, Key: key})
	}
}

func (s *state) event(kind EventKind, key string, err error) {
	var c *atomic.Int64
	switch kind {
	case EventHit:
		c = &s.stats.hits
	case EventMiss:
		c = &s.stats.misses
	case EventStaleServed:
		c = &s.stats.stale
	case EventCreated:
		c = &s.stats.creations
	case EventLockWait:
		c = &s.stats.waits
	case EventError:
		c = &s.stats.errors
	case EventWriteError:
		c = &s.stats.writeErrors
	}
	c.Add(1)
	if s.observer != nil {
		s.observer(Event{Kind: kind, Key: key, Err: err})
	}
}

// Keys reserved for the region's own records start with one NUL byte; user
// keys that start with NUL get a second one, so no user key can reach them.
const (
	hardKey = "\x00regioncache:invalidated:hard"
	softKey = "\x00regioncache:invalidated:soft"
)

// key maps a caller's key to the backend key.
func (s *state) key(k string) string {
	if s.mangler != nil {
		k = s.mangler(k)
	}
	if len(k) > 0 && k[0] == 0 {
		return "\x00" + k
	}
	return k
}

// InvalidationMode selects hard or soft invalidation.
type InvalidationMode int

const (
	// Hard invalidation makes every existing value a miss: the next caller
	// waits for a new value.
	Hard InvalidationMode = iota
	// Soft invalidation makes every existing value stale: callers are served
	// it while one of them regenerates.
	Soft
)

type invalidations struct {
	hard, soft int64 // unix nanoseconds; entries created before are invalid
	checked    int64 // when the marks were last read from the backend
}

// Invalidate marks every value in the region created before now as missing
// (Hard) or stale (Soft). The mark is stored through the backend, so every
// region sharing the backend's storage honours it, within its
// WithInvalidationCheck interval; this region honours it at once.
func (r *Region) Invalidate(ctx context.Context, mode InvalidationMode) error {
	s, err := r.load()
	if err != nil {
		return err
	}
	if mode != Hard && mode != Soft {
		return fmt.Errorf("%w: Invalidate: mode must be region.Hard or region.Soft, got %d", ErrBadOption, int(mode))
	}
	now := time.Now().UnixNano()
	k := hardKey
	if mode == Soft {
		k = softKey
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(now))
	if err := s.backend.Set(ctx, k, backends.Entry{Payload: buf[:], Created: time.Unix(0, now)}); err != nil {
		return fmt.Errorf("region %s: store invalidation: %w", s.name, err)
	}
	for {
		old := s.inv.Load()
		n := *old
		if mode == Hard {
			n.hard = max(n.hard, now)
		} else {
			n.soft = max(n.soft, now)
		}
		if s.inv.CompareAndSwap(old, &n) {
			return nil
		}
	}
}

// marks returns the invalidation marks, re-reading them from a shared backend
// when they are older than the check interval. Only one goroutine re-reads at
// a time; the others use the marks they have.
func (s *state) marks(ctx context.Context) *invalidations {
	inv := s.inv.Load()
	now := time.Now().UnixNano()
	if now-inv.checked < int64(s.invalidations) && inv.checked != 0 {
		return inv
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return inv
	}
	defer s.refreshing.Store(false)
	es, err := backends.GetMulti(ctx, s.backend, []string{hardKey, softKey})
	if err != nil {
		s.logger.Warn("regioncache: cannot read invalidation marks", "err", err)
		return inv
	}
	read := func(e *backends.Entry) int64 {
		if e == nil || len(e.Payload) != 8 {
			return 0
		}
		return int64(binary.BigEndian.Uint64(e.Payload))
	}
	for {
		old := s.inv.Load()
		n := &invalidations{hard: max(old.hard, read(es[0])), soft: max(old.soft, read(es[1])), checked: now}
		if s.inv.CompareAndSwap(old, n) {
			return n
		}
	}
}

// status is what a read found.
type status int

const (
	missing status = iota
	stale
	fresh
)

// classify judges an entry: missing if too old a version or hard-invalidated,
// stale if expired or soft-invalidated, fresh otherwise.
func (s *state) classify(ctx context.Context, e *backends.Entry, exp time.Duration) status {
	if e.Version < s.minVersion {
		return missing
	}
	inv := s.inv.Load()
	if s.shared {
		inv = s.marks(ctx)
	}
	created := e.Created.UnixNano()
	if created < inv.hard {
		return missing
	}
	if created < inv.soft {
		return stale
	}
	if exp > 0 && time.Since(e.Created) > exp {
		return stale
	}
	return fresh
}

// EvictTag removes every entry carrying tag, if the backend supports tags
// (otherwise the error wraps backends.ErrUnsupported). It returns how many
// entries were removed.
func (r *Region) EvictTag(ctx context.Context, tag string) (int, error) {
	s, err := r.load()
	if err != nil {
		return 0, err
	}
	te, ok := s.backend.(backends.TagEvicter)
	if !ok || !backends.Has(s.backend, backends.CapTags) {
		return 0, fmt.Errorf("region %s: EvictTag: backend %s: %w", s.name, s.backendName, backends.ErrUnsupported)
	}
	return te.EvictTag(ctx, tag)
}

// Delete removes the entries for keys. Absent keys are not an error.
func (r *Region) Delete(ctx context.Context, keys ...string) error {
	s, err := r.load()
	if err != nil {
		return err
	}
	bks := make([]string, len(keys))
	for i, k := range keys {
		bks[i] = s.key(k)
	}
	if err := backends.DeleteMulti(ctx, s.backend, bks); err != nil {
		return fmt.Errorf("region %s: delete: %w", s.name, err)
	}
	return nil
}

// unlock releases h, logging (not returning) a failure: a lost lock means
// another caller may have regenerated concurrently, which is harmless for
// whole-value writes but worth knowing.
func (s *state) unlock(h lock.Handle, key string) {
	if err := h.Unlock(); err != nil {
		if errors.Is(err, lock.ErrLost) {
			s.logger.Warn("regioncache: lock lost while creating", "key", printable(key), "err", err)
		} else {
			s.logger.Error("regioncache: cannot release lock", "key", printable(key), "err", err)
		}
		s.event(EventError, key, err)
	}
}

// printable shortens and quotes a key for logs.
func printable(k string) string {
	if len(k) > 200 {
		k = k[:200] + "..."
	}
	if strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Sprintf("%q", k)
	}
	return k
}
