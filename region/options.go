package region

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// Option configures a Region. Options given to New apply to every later
// Configure; options given to Configure or Open are applied after them.
type Option func(*config) error

type config struct {
	name          string
	expiration    time.Duration
	codec         Codec
	mangler       func(string) string
	version       int
	minVersion    int
	logger        *slog.Logger
	observer      func(Event)
	locker        lock.Locker
	invalidations time.Duration
}

func defaultConfig() config {
	return config{codec: Gob, invalidations: time.Second}
}

// WithName names the region in logs and errors.
func WithName(name string) Option {
	return func(c *config) error { c.name = name; return nil }
}

// WithExpiration makes values older than d stale. Zero or a negative d means
// values never expire (the default).
func WithExpiration(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			d = 0
		}
		c.expiration = d
		return nil
	}
}

// WithCodec sets the codec for values other than []byte and string. The
// default is Gob.
func WithCodec(codec Codec) Option {
	return func(c *config) error {
		if codec == nil {
			return fmt.Errorf("%w: WithCodec: codec is nil", ErrBadOption)
		}
		c.codec = codec
		return nil
	}
}

// WithKeyMangler transforms every key before it reaches the backend (for
// example SHA256Mangler, to bound key length). Manglers must be
// deterministic and should be collision-resistant.
func WithKeyMangler(m func(string) string) Option {
	return func(c *config) error { c.mangler = m; return nil }
}

// WithVersion sets the schema version written into new entries (default 0).
func WithVersion(v int) Option {
	return func(c *config) error { c.version = v; return nil }
}

// WithMinVersion makes entries written with a schema version below v misses,
// so that values of an older shape are regenerated rather than decoded.
func WithMinVersion(v int) Option {
	return func(c *config) error { c.minVersion = v; return nil }
}

// WithLogger sets the logger for failures that do not fail a call (failed
// writes, lost locks, background regeneration errors). The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithObserver installs a hook called for every cache event (hits, misses,
// creations, ...), for a metrics system. fn is called synchronously on the
// calling goroutine and must be fast and safe for concurrent use.
func WithObserver(fn func(Event)) Option {
	return func(c *config) error { c.observer = fn; return nil }
}

// WithLocker overrides the dogpile lock. By default a region uses the
// backend's own lock (a cross-process one, for backends that have it) and
// otherwise an in-process lock.Keyed.
func WithLocker(l lock.Locker) Option {
	return func(c *config) error { c.locker = l; return nil }
}

// WithInvalidationCheck sets how often a region re-reads the invalidation
// marks that other processes may have stored in a shared backend (default one
// second). Zero re-reads them on every call. Invalidations made through this
// region take effect at once regardless.
func WithInvalidationCheck(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithInvalidationCheck: want a duration >= 0, got %v", ErrBadOption, d)
		}
		c.invalidations = d
		return nil
	}
}

// CallOption adjusts one call (GetOrCreate, Get, Set, a Loader, ...).
type CallOption interface {
	applyCall(*callConfig)
}

type callConfig struct {
	expiration    time.Duration
	hasExpiration bool
	waitFresh     bool
	background    bool
	tags          []string
	shouldCache   any // func(T) bool for the call's T
	keyFunc       any // func(K) string for a Loader's K
	move          bool
}

type callOptionFunc func(*callConfig)

func (f callOptionFunc) applyCall(c *callConfig) { f(c) }

// ExpireAfter overrides the region's expiration for this call: values older
// than d are stale. A negative d means never stale.
func ExpireAfter(d time.Duration) CallOption {
	return callOptionFunc(func(c *callConfig) {
		if d < 0 {
			d = 0
		}
		c.expiration, c.hasExpiration = d, true
	})
}

// WaitForFresh makes a caller that finds a stale value wait for the fresh one
// (regenerating it if it wins the lock) instead of being served the stale
// value (dogpile issue #264).
func WaitForFresh() CallOption {
	return callOptionFunc(func(c *callConfig) { c.waitFresh = true })
}

// RegenerateInBackground makes a caller that finds a stale value and wins the
// lock return the stale value at once and regenerate it in a new goroutine
// (dogpile's async_creation_runner). The creator then runs with a context
// that is not cancelled when the caller's is. A panic in a background creator
// is recovered, logged and counted as an error.
func RegenerateInBackground() CallOption {
	return callOptionFunc(func(c *callConfig) { c.background = true })
}

// WithTags attaches tags to values written by this call, for EvictTag.
func WithTags(tags ...string) CallOption {
	return callOptionFunc(func(c *callConfig) { c.tags = append(c.tags, tags...) })
}

// CacheIf stores a created value only if keep returns true for it (dogpile's
// should_cache_fn); the value is returned either way. T must be the type of
// the call it is given to, otherwise the option is ignored.
func CacheIf[T any](keep func(T) bool) CallOption {
	return callOptionFunc(func(c *callConfig) { c.shouldCache = keep })
}

// MoveFile tells GetOrCreateFile that the creator's file may be moved into
// the cache (renamed) instead of copied. The backend must allow it as well
// (rawfs does unless file_movable is false).
func MoveFile() CallOption {
	return callOptionFunc(func(c *callConfig) { c.move = true })
}

// KeyFunc sets how a Loader turns its key into a cache key (the namespace is
// still prepended). It only has an effect on Cached.
func KeyFunc[K comparable](fn func(K) string) CallOption {
	return callOptionFunc(func(c *callConfig) { c.keyFunc = fn })
}

// EventKind says what happened in an Event.
type EventKind int

// Event kinds.
const (
	EventHit         EventKind = iota // a fresh value was returned from the cache
	EventMiss                         // nothing usable was found
	EventStaleServed                  // a stale value was returned
	EventCreated                      // a creator ran and succeeded
	EventLockWait                     // a caller waited for another's lock
	EventError                        // a creator or the backend failed
	EventWriteError                   // storing a created value failed (the call did not)
)

var eventNames = [...]string{"hit", "miss", "stale-served", "created", "lock-wait", "error", "write-error"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is reported to an observer installed with WithObserver.
type Event struct {
	Kind EventKind
	Key  string // the key as given by the caller
	Err  error  // for EventError and EventWriteError
}
