package region

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/regioncache/regioncache/backends"
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
	strategy      InvalidationStrategy
	earlyBeta     float64 // WithEarlyRefresh
	now           func() time.Time
	bgTimeout     time.Duration
	asyncRunner   func(ctx context.Context, key string, regenerate func(context.Context))
	wrap          []backends.Wrapper
}

func defaultConfig() config {
	return config{codec: Gob, invalidations: time.Second, expiration: -1}
}

// WithClock sets the region's notion of now (for tests): creation times of
// new entries and expiration are judged with it. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: now is nil", ErrBadOption)
		}
		c.now = now
		return nil
	}
}

// WithBackgroundTimeout bounds each background regeneration: its context
// ends after d (default: no bound other than Close, which cancels it).
func WithBackgroundTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithBackgroundTimeout: want a duration >= 0, got %v", ErrBadOption, d)
		}
		c.bgTimeout = d
		return nil
	}
}

// WithAsyncRunner replaces the goroutine that RegenerateInBackground starts
// (dogpile's async_creation_runner), for example with a bounded worker pool.
// run is called with the background context, the caller's key and the
// regeneration; it must call regenerate exactly once, from any goroutine
// (the key's lock stays held, and Close waits, until it has run). Calls
// after the first are ignored.
func WithAsyncRunner(run func(ctx context.Context, key string, regenerate func(context.Context))) Option {
	return func(c *config) error {
		if run == nil {
			return fmt.Errorf("%w: WithAsyncRunner: run is nil", ErrBadOption)
		}
		c.asyncRunner = run
		return nil
	}
}

// WithWrap wraps the region's backend in proxies (dogpile's ProxyBackend),
// innermost first: WithWrap(a, b) makes the region call b(a(backend)).
func WithWrap(w ...backends.Wrapper) Option {
	return func(c *config) error {
		for i, x := range w {
			if x == nil {
				return fmt.Errorf("%w: WithWrap: wrapper %d is nil", ErrBadOption, i)
			}
		}
		c.wrap = append(c.wrap, w...)
		return nil
	}
}

// WithName names the region in logs and errors.
func WithName(name string) Option {
	return func(c *config) error { c.name = name; return nil }
}

// WithExpiration makes values older than d stale. Zero or a negative d means
// values never expire (the default).
func WithExpiration(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			d = -1
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
	expiration       time.Duration // < 0: never stale; 0: always stale
	expFunc          func() time.Duration
	ignoreExpiration bool
	beta             float64 // EarlyRefresh; 0: off
	forceEarly       bool    // the hit path chose this call's read for early refresh
	waitFresh        bool
	background       bool
	tags             []string
	shouldCache      []any // func(T) bool, each for calls of its T
	keyFunc          any   // func(K) string for a Loader's K
	move             bool
}

type callOptionFunc func(*callConfig)

func (f callOptionFunc) applyCall(c *callConfig) { f(c) }

// ExpireAfter overrides the region's expiration for this call: values older
// than d are stale. d == 0 means always stale (every call re-creates, as in
// dogpile); a negative d means never stale.
func ExpireAfter(d time.Duration) CallOption {
	return callOptionFunc(func(c *callConfig) {
		if d < 0 {
			d = -1
		}
		c.expiration, c.expFunc = d, nil
	})
}

// ExpireAfterFunc is ExpireAfter with the duration asked of f on every call
// (dogpile's expiration_time as a callable).
func ExpireAfterFunc(f func() time.Duration) CallOption {
	return callOptionFunc(func(c *callConfig) { c.expFunc = f })
}

// IgnoreExpiration makes Get, GetEntry and GetMulti return values that are
// expired or invalidated (GetEntry reports them with Stale set). Values of
// too old a version are still misses. GetOrCreate ignores it.
func IgnoreExpiration() CallOption {
	return callOptionFunc(func(c *callConfig) { c.ignoreExpiration = true })
}

// EarlyRefresh regenerates values before they expire (probabilistic early
// expiration, "XFetch"): a caller of GetOrCreate, GetOrCreateMulti or
// GetOrCreateFile that finds a fresh value is chosen, with a probability
// that grows as expiry nears and with the key's measured creator run time,
// to regenerate it; it still gets the fresh value at once, and regenerates
// in the background if it wins the key's lock (otherwise another caller
// already is). So a hot key is regenerated by one caller shortly before it
// expires, and no caller waits for it or is served it stale. beta scales
// how early (1 is the usual choice; larger is earlier); 0 (or less) turns
// it off for the call. It has an effect only with an expiration, and none
// on Get, GetEntry and GetMulti. See also WithEarlyRefresh.
func EarlyRefresh(beta float64) CallOption {
	return callOptionFunc(func(c *callConfig) {
		if !(beta > 0) { // and NaN
			beta = 0
		}
		c.beta = beta
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
// should_cache_fn); the value is returned either way. It applies to calls
// whose value type is T (*os.File for GetOrCreateFile) and is ignored by
// others; several CacheIf options must all keep a value.
func CacheIf[T any](keep func(T) bool) CallOption {
	return callOptionFunc(func(c *callConfig) { c.shouldCache = append(c.shouldCache, keep) })
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
	EventLockLost                     // a creator's lock was lost before its store: the value was returned, not stored
)

var eventNames = [...]string{"hit", "miss", "stale-served", "created", "lock-wait", "error", "write-error", "lock-lost"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// numKinds is the number of event kinds.
const numKinds = int(EventLockLost) + 1

// Event is reported to an observer installed with WithObserver.
type Event struct {
	Kind EventKind
	Key  string // the key as given by the caller (empty for some multi errors)
	Err  error  // for EventError, EventWriteError and EventLockLost

	// Context is the context of the call the event belongs to (for
	// background work, the background context, which keeps the caller's
	// values), so that a tracer can link the event to the caller's span.
	Context context.Context
	// Region is the region's name (WithName, or the backend's name).
	Region string
	// Duration is the creator's run time for EventCreated (and for the
	// EventError of a failed creator), and the wait for EventLockWait.
	Duration time.Duration
}

// shouldCache reports whether every CacheIf option for T keeps v.
func shouldCache[T any](c *callConfig, v T) bool {
	for _, f := range c.shouldCache {
		if keep, ok := f.(func(T) bool); ok && !keep(v) {
			return false
		}
	}
	return true
}
