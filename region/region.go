package region

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	disableEnv string // DisableEnv's value when the region was configured

	config
	backendName string
	backend     backends.Backend
	keepsValues bool
	// aliasPayloads: the backend never changes a payload after Get
	// (backends.ReadOnlyPayloads), so a string value may share its bytes.
	aliasPayloads bool
	shared        bool      // other processes may write invalidation marks
	wallClock     bool      // now is time.Now (no WithClock): hits read clock
	clock         wallClock // the wall clock at one clock read, for hits
	files         backends.FileStore
	lock          lock.Locker
	logger        *slog.Logger

	discards bool // the backend keeps nothing (null): no locks, no sharing

	marks    backendMarks         // the default invalidation strategy
	strategy InvalidationStrategy // a custom one (WithInvalidationStrategy), or nil

	defaults callConfig // the call configuration of a call without options
	flights  flightGroup
	creators creatorTimes // creators' run times, for EarlyRefresh

	stats counters

	// Lifecycle: calls and background work in flight, and Close.
	closed       atomic.Bool // Close began: new calls fail with ErrClosed
	lifeMu       sync.Mutex
	closedLocked bool
	work         sync.WaitGroup
	closing      context.Context // done when Close begins
	closeNow     context.CancelFunc
}

// enter counts a call or background job in flight; it reports false once
// Close began.
func (s *state) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closedLocked {
		return false
	}
	s.work.Add(1)
	return true
}

func (s *state) exit() { s.work.Done() }

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
// It returns ErrAlreadyConfigured if the region is configured (ErrClosed if
// it was closed), an error
// wrapping ErrUnknownBackend (listing the known names) for an unknown
// backend, and the backend's own error (wrapping backends.ErrBadArgument) for
// bad arguments.
func (r *Region) Configure(backend string, args backends.Args, opts ...Option) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.state.Load(); s != nil {
		if s.closed.Load() {
			return ErrClosed
		}
		return ErrAlreadyConfigured
	}
	cfg, err := r.config(opts)
	if err != nil {
		return err
	}
	args, wraps, err := wrapArgs(args)
	if err != nil {
		return err
	}
	b, err := openOrPassThrough(&cfg, backend, args)
	if err != nil {
		return err
	}
	if b, err = wrapBackend(b, append(wraps, cfg.wrap...)); err != nil {
		return err
	}
	r.state.Store(newState(cfg, backend, b))
	return nil
}

// wrapArgs takes the "wrap" argument (a wrapper name or a list of names,
// innermost first) and each wrapper's "wrap_args.<name>" out of args.
func wrapArgs(args backends.Args) (backends.Args, []backends.Wrapper, error) {
	w, ok := args["wrap"]
	if !ok {
		return args, nil, nil
	}
	var names []string
	switch x := w.(type) {
	case string:
		names = []string{x}
	case []string:
		names = x
	case []any:
		for i, n := range x {
			s, ok := n.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: wrap[%d]: want a wrapper name, got %T", backends.ErrBadArgument, i, n)
			}
			names = append(names, s)
		}
	default:
		return nil, nil, fmt.Errorf("%w: wrap: want a wrapper name or a list of names, got %T", backends.ErrBadArgument, w)
	}
	rest := make(backends.Args, len(args))
	for k, v := range args {
		rest[k] = v
	}
	delete(rest, "wrap")
	var ws []backends.Wrapper
	for _, n := range names {
		var wa backends.Args
		if a, ok := rest["wrap_args."+n]; ok {
			m, ok := a.(map[string]any)
			if !ok {
				return nil, nil, fmt.Errorf("%w: wrap_args.%s: want a map, got %T", backends.ErrBadArgument, n, a)
			}
			wa = backends.Args(m)
			delete(rest, "wrap_args."+n)
		}
		wr, err := backends.LookupWrapper(n, wa)
		if err != nil {
			return nil, nil, err
		}
		ws = append(ws, wr)
	}
	return rest, ws, nil
}

// wrapBackend applies ws to b, innermost first; on failure b is closed.
func wrapBackend(b backends.Backend, ws []backends.Wrapper) (backends.Backend, error) {
	for i, w := range ws {
		nb, err := w(b)
		if err == nil && nb == nil {
			err = fmt.Errorf("%w: wrapper %d returned a nil backend", ErrBadOption, i)
		}
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("region: wrap: %w", err)
		}
		b = nb
	}
	return b, nil
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
	if s := r.state.Load(); s != nil {
		if s.closed.Load() {
			return ErrClosed
		}
		return ErrAlreadyConfigured
	}
	cfg, err := r.config(opts)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%T", b)
	if _, pass := b.(passThrough); !pass { // a passThrough is already disabled and logged
		if off, why := disabledByEnv(cmp.Or(cfg.name, name)); off {
			logDisabled(&cfg, cmp.Or(cfg.name, name), name, why)
			b.Close()
			b = passThrough{}
		}
	}
	if b, err = wrapBackend(b, cfg.wrap); err != nil {
		return err
	}
	r.state.Store(newState(cfg, name, b))
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
	s.closing, s.closeNow = context.WithCancel(context.Background())
	s.keepsValues = backends.KeepsValues(b)
	s.shared = backends.IsShared(b)
	s.aliasPayloads = backends.PayloadsReadOnly(b)
	s.discards = backends.Discards(b)
	if fs, ok := b.(backends.FileStore); ok {
		s.files = fs
	}
	s.lock = cfg.locker
	if s.lock == nil {
		s.lock = backends.LockerOf(b)
	}
	if s.lock == nil {
		s.lock = new(lock.Keyed)
	}
	if s.now == nil {
		s.now, s.wallClock = time.Now, true
	}
	s.defaults = callConfig{expiration: cfg.expiration, beta: cfg.earlyBeta}
	s.creators.init()
	s.logger = cfg.logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.name == "" {
		s.name = name
	}
	s.disableEnv = os.Getenv(DisableEnv)
	s.logger = s.logger.With("region", s.name)
	s.marks.init(b, s.shared, cfg.invalidations, s.logger)
	s.strategy = cfg.strategy
	return s
}

// Close closes the region, like database/sql's DB.Close: once Close begins,
// new calls fail with ErrClosed and no new background work starts; the
// contexts of background regenerations in flight are cancelled; Close then
// waits for the calls and background work in flight to return and closes
// the backend. A creator that ignores its context delays Close until it
// returns (WithBackgroundTimeout bounds background creators). Close is
// idempotent: later calls return nil. Closing an unconfigured region returns
// nil; a closed region cannot be configured again.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	if s == nil || s.closed.Load() {
		return nil
	}
	s.closed.Store(true)
	s.lifeMu.Lock()
	s.closedLocked = true
	s.lifeMu.Unlock()
	s.closeNow()
	s.work.Wait()
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
	s := r.state.Load()
	if s == nil {
		return nil, ErrNotConfigured
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s, nil
}

// begin is load for calls that may create, wait or write: it counts the call
// as in flight until end.
func (r *Region) begin() (*state, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if !s.enter() {
		return nil, ErrClosed
	}
	return s, nil
}

// Stats are a region's counters since it was configured. Every call counts
// once in Calls and once in exactly one of Hits, StaleServed and Misses (a
// multi call counts once per distinct key).
type Stats struct {
	Calls       int64 // calls (keys, for multi calls)
	Hits        int64 // calls served a fresh value from their first read
	Misses      int64 // calls that found nothing usable (they waited or created)
	StaleServed int64 // calls served a stale value while another caller regenerated
	Creations   int64 // creator runs that succeeded (one per key)
	LockWaits   int64 // waits for another caller's creation or lock
	Errors      int64 // creator failures and backend failures
	WriteErrors int64 // created values that could not be stored (the calls succeeded)
	LocksLost   int64 // created values not stored because the creator's lock was lost (fenced stores)
}

// counters are striped over padded cells so that hits on several cores do
// not write one shared cache line.
type counters struct {
	cells [stripes]counterCell
}

const stripes = 16

type counterCell struct {
	n [numKinds]atomic.Int64 // one per EventKind
	_ [128 - (numKinds*8)%128]byte
}

func (c *counters) add(kind EventKind) {
	c.cells[stripe()].n[kind].Add(1)
}

// stripe picks a counter cell for the calling goroutine from the address of
// its stack: goroutines running at once have distinct stacks, so cores
// mostly write distinct cells, and one goroutine keeps to one cell. It is a
// hint, never a correctness matter (stacks move; cells are summed).
func stripe() uintptr {
	var probe byte
	p := uintptr(unsafe.Pointer(&probe)) >> 13
	return (p ^ p>>5 ^ p>>11) % stripes
}

func (c *counters) sum(kind int) int64 {
	var n int64
	for i := range c.cells {
		n += c.cells[i].n[kind].Load()
	}
	return n
}

// Stats returns the region's counters. An unconfigured region reports zeros.
func (r *Region) Stats() Stats {
	s := r.state.Load()
	if s == nil {
		return Stats{}
	}
	c := &s.stats
	st := Stats{Hits: c.sum(int(EventHit)), Misses: c.sum(int(EventMiss)),
		StaleServed: c.sum(int(EventStaleServed)), Creations: c.sum(int(EventCreated)),
		LockWaits: c.sum(int(EventLockWait)), Errors: c.sum(int(EventError)),
		WriteErrors: c.sum(int(EventWriteError)), LocksLost: c.sum(int(EventLockLost))}
	st.Calls = st.Hits + st.Misses + st.StaleServed
	return st
}

// hit counts a hit. It is apart from event to keep the hit path short.
func (s *state) hit(ctx context.Context, key string) {
	s.stats.add(EventHit)
	if s.observer != nil {
		s.observer(Event{Kind: EventHit, Key: key, Context: ctx, Region: s.name})
	}
}

// event counts an event and reports it to the observer. d is the creator's
// run time (EventCreated, EventError of a creator) or the wait (EventLockWait).
func (s *state) event(ctx context.Context, kind EventKind, key string, err error, d time.Duration) {
	s.stats.add(kind)
	s.notify(ctx, kind, key, err, d)
}

// notify reports an event to the observer without counting it.
func (s *state) notify(ctx context.Context, kind EventKind, key string, err error, d time.Duration) {
	if s.observer != nil {
		s.observer(Event{Kind: kind, Key: key, Err: err, Context: ctx, Region: s.name, Duration: d})
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
// (Hard) or stale (Soft), through the region's InvalidationStrategy. By
// default the mark is stored through the backend (BackendInvalidation), so
// every region sharing the backend's storage honours it, within its
// WithInvalidationCheck interval; this region honours it at once.
func (r *Region) Invalidate(ctx context.Context, mode InvalidationMode) error {
	s, err := r.load()
	if err != nil {
		return err
	}
	if mode != Hard && mode != Soft {
		return fmt.Errorf("%w: Invalidate: mode must be region.Hard or region.Soft, got %d", ErrBadOption, int(mode))
	}
	if s.strategy != nil {
		err = s.strategy.Invalidate(ctx, mode, s.now())
	} else {
		err = s.marks.Invalidate(ctx, mode, s.now())
	}
	if err != nil {
		return fmt.Errorf("region %s: invalidate: %w", s.name, err)
	}
	return nil
}

// status is what a read found.
type status int

const (
	missing status = iota
	stale
	fresh
	due // fresh, but near enough expiry that EarlyRefresh may choose it (see state.early)
)

// classify judges an entry: missing if too old a version or hard-invalidated,
// stale if expired or soft-invalidated, fresh otherwise — or due, when
// EarlyRefresh is on and expiry is near (callers that read for the engine
// let state.early choose; readers take due for fresh). cfg.expiration < 0 means never expired, 0 always expired.
func (s *state) classify(ctx context.Context, e *backends.Entry, cfg *callConfig) status {
	var now time.Time
	haveNow := false
	if e.Version < s.minVersion {
		return missing
	}
	if s.strategy != nil {
		if cfg.ignoreExpiration {
			return fresh
		}
		if mode, ok := s.strategy.Invalidated(ctx, e.Created); ok {
			if mode == Hard {
				return missing
			}
			return stale
		}
	} else {
		inv := s.marks.inv.Load()
		if s.shared {
			// One clock read serves the marks' refresh and the expiration
			// check (a clock read is a sizeable part of a local hit).
			if s.wallClock {
				n := s.clock.unixNano()
				now, haveNow = time.Unix(0, n), true
				inv = s.marks.currentAt(ctx, n)
			} else {
				inv = s.marks.current(ctx)
			}
		}
		if cfg.ignoreExpiration {
			return fresh
		}
		if inv.hard != 0 || inv.soft != 0 {
			created := e.Created.UnixNano()
			if created < inv.hard {
				return missing
			}
			if created < inv.soft {
				return stale
			}
		}
	}
	exp := cfg.expiration
	if exp < 0 {
		return fresh
	}
	if exp == 0 {
		return stale
	}
	if !haveNow {
		if s.wallClock {
			now = time.Unix(0, s.clock.unixNano())
		} else {
			now = s.now()
		}
	}
	age := now.Sub(e.Created)
	if age > exp {
		return stale
	}
	if cfg.beta > 0 && s.nearExpiry(exp-age, cfg.beta) {
		return due
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
	n, err := backends.EvictTag(ctx, s.backend, tag)
	if err != nil {
		return n, fmt.Errorf("region %s: backend %s: %w", s.name, s.backendName, err)
	}
	return n, nil
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
		s.event(context.Background(), EventError, key, err, 0)
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
