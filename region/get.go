package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// callCfg applies opts over the region's defaults.
func (s *state) callCfg(opts []CallOption) callConfig {
	c := callConfig{expiration: s.expiration, beta: s.earlyBeta}
	for _, o := range opts {
		if o != nil {
			o.applyCall(&c)
		}
	}
	if c.expFunc != nil {
		d := c.expFunc()
		if d < 0 {
			d = -1
		}
		c.expiration = d
	}
	return c
}

// GetOrCreate returns the value cached under key, creating it with create
// when it is missing or stale, with dogpile locking: among all callers that
// share the region's backend, one runs create and the others wait for its
// value, or are served the stale value meanwhile (see the package doc).
//
// create's error is returned to the caller that ran it and nothing is cached;
// callers of this process that were waiting for that creation get an error
// wrapping both ErrCreatorFailed and create's error. A failure to store a
// created value is logged and counted; the value is still returned. Backend
// read failures are returned as errors. A cached value of another Go type
// than T is replaced (and the replacement logged).
func GetOrCreate[T any](ctx context.Context, r *Region, key string, create func(context.Context) (T, error), opts ...CallOption) (T, error) {
	var zero T
	s, err := r.load()
	if err != nil {
		return zero, err
	}
	bk := s.key(key)
	if len(opts) == 0 {
		// The hit path: no call configuration to build.
		e, err := s.backend.Get(ctx, bk)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return getOrCreateSlow(ctx, r, key, bk, create, opts, nil)
		}
		if err == nil {
			if st := s.classify(ctx, &e, &s.defaults); st >= fresh {
				if st == due && s.early(bk, &e, &s.defaults) {
					// Chosen for early refresh (WithEarlyRefresh): the
					// engine serves the value and regenerates it in the
					// background.
					return getOrCreateSlow(ctx, r, key, bk, create, earlyOpts, nil)
				}
				if v, ok := decode[T](s, &e); ok {
					s.hit(ctx, key)
					return v, nil
				}
			}
		}
		// Stale, missing or undecodable: the engine starts from this read
		// rather than asking the backend (a round trip for a remote one)
		// again.
		return getOrCreateSlow(ctx, r, key, bk, create, nil, &firstRead{e, err == nil})
	}
	return getOrCreateSlow(ctx, r, key, bk, create, opts, nil)
}

// firstRead is a read of the key a caller has already made: the engine
// starts from it instead of asking the backend again.
type firstRead struct {
	e     backends.Entry
	found bool
}

// getOrCreateSlow is everything but an option-less hit; it is a function of
// its own so that what it builds never costs a hit an allocation. first, if
// not nil, is the caller's read of the key.
func getOrCreateSlow[T any](ctx context.Context, r *Region, key, bk string, create func(context.Context) (T, error), opts []CallOption, first *firstRead) (T, error) {
	var zero T
	s, err := r.begin()
	if err != nil {
		return zero, err
	}
	defer s.exit()
	cfg := s.engineCfg(opts)
	src := &valueSource[T]{s: s, cfg: &cfg, create1: create}
	sl := &slot[T]{key: key, bk: bk}
	slots := []*slot[T]{sl}
	if first != nil {
		judge(ctx, s, &cfg, sl, &first.e, first.found)
	} else if err := src.read(ctx, slots); err != nil {
		s.event(ctx, EventError, key, err, 0)
		return zero, err
	}
	c := &call[T]{s: s, cfg: &cfg, src: src, slots: slots}
	if err := c.run(ctx); err != nil {
		return zero, err
	}
	return sl.v, nil
}

// valueSource is the engine's source for encoded (or kept) Go values.
type valueSource[T any] struct {
	s       *state
	cfg     *callConfig
	create1 func(context.Context) (T, error)
	createN func(context.Context, []string) ([]T, error)
}

func (v *valueSource[T]) read(ctx context.Context, slots []*slot[T]) error {
	s := v.s
	if len(slots) == 1 {
		sl := slots[0]
		e, err := s.backend.Get(ctx, sl.bk)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return fmt.Errorf("region %s: get %s: %w", s.name, printable(sl.key), err)
		}
		judge(ctx, s, v.cfg, sl, &e, err == nil)
		return nil
	}
	bks := make([]string, len(slots))
	for i, sl := range slots {
		bks[i] = sl.bk
	}
	es, err := backends.GetMulti(ctx, s.backend, bks)
	if err == nil && len(es) != len(bks) {
		err = fmt.Errorf("backend returned %d entries for %d keys", len(es), len(bks))
	}
	if err != nil {
		return fmt.Errorf("region %s: get multi: %w", s.name, err)
	}
	for i, sl := range slots {
		judge(ctx, s, v.cfg, sl, es[i], es[i] != nil)
	}
	return nil
}

// judge sets sl's status and value from e (found == false: a miss).
func judge[T any](ctx context.Context, s *state, cfg *callConfig, sl *slot[T], e *backends.Entry, found bool) {
	var zero T
	sl.v, sl.has, sl.st, sl.mismatch, sl.early = zero, false, missing, false, false
	sl.ent, sl.hasEnt = backends.Entry{}, false
	if !found {
		return
	}
	sl.ent, sl.hasEnt = *e, true
	st := s.classify(ctx, e, cfg)
	if st == missing {
		return
	}
	val, err := decodeEntry[T](s, e)
	if err != nil {
		sl.mismatch = errors.Is(err, ErrTypeMismatch)
		return
	}
	sl.v, sl.has, sl.st, sl.early = val, true, st, false
	if st == due || st == fresh && cfg.forceEarly {
		sl.st, sl.early = fresh, s.early(sl.bk, e, cfg)
	}
}

func (v *valueSource[T]) create(ctx context.Context, slots []*slot[T]) ([]T, error) {
	if v.createN == nil {
		x, err := v.create1(ctx)
		if err != nil {
			return nil, err
		}
		return []T{x}, nil
	}
	keys := make([]string, len(slots))
	for i, sl := range slots {
		keys[i] = sl.key
	}
	return v.createN(ctx, keys)
}

func (v *valueSource[T]) store(ctx context.Context, slots []*slot[T], vs []T) []T {
	s := v.s
	var bks []string
	var es []backends.Entry
	var keys []string
	fenced, _ := s.backend.(backends.FencedSetter)
	for i, sl := range slots {
		if !shouldCache(v.cfg, vs[i]) {
			continue
		}
		e, err := entryFor(s, vs[i], v.cfg)
		if err != nil {
			s.logger.Warn("regioncache: cannot encode created value", "key", printable(sl.key), "err", err)
			s.event(ctx, EventWriteError, sl.key, err, 0)
			continue
		}
		if fenced != nil && sl.h != nil {
			// The store succeeds only while sl's lock is still held.
			err := fenced.SetFenced(ctx, sl.bk, e, sl.h)
			switch {
			case err == nil:
				continue
			case errors.Is(err, lock.ErrLost):
				s.lockLost(ctx, sl.key, err)
				continue
			case !errors.Is(err, backends.ErrUnsupported):
				s.logger.Warn("regioncache: cannot store created value", "key", printable(sl.key), "err", err)
				s.event(ctx, EventWriteError, sl.key, err, 0)
				continue
			}
			// A handle the backend did not hand out (WithLocker): a plain Set.
		}
		bks, es, keys = append(bks, sl.bk), append(es, e), append(keys, sl.key)
	}
	var err error
	switch len(bks) {
	case 0:
		return vs
	case 1:
		err = s.backend.Set(ctx, bks[0], es[0])
	default:
		err = backends.SetMulti(ctx, s.backend, bks, es)
	}
	if err != nil {
		s.logger.Warn("regioncache: cannot store created value", "key", printable(keys[0]), "keys", len(keys), "err", err)
		s.event(ctx, EventWriteError, keys[0], err, 0)
	}
	return vs
}

func (v *valueSource[T]) discard(T)       {}
func (v *valueSource[T]) shareable() bool { return true }

func (v *valueSource[T]) fromEntry(ctx context.Context, sl *slot[T], e *backends.Entry) bool {
	judge(ctx, v.s, v.cfg, sl, e, true)
	return true
}

// entryFor builds the entry for v.
func entryFor[T any](s *state, v T, cfg *callConfig) (backends.Entry, error) {
	e := backends.Entry{Created: s.now(), Version: s.version, Tags: cfg.tags}
	if s.keepsValues {
		e.Value = v
		return e, nil
	}
	p, err := encodePayload(s, v)
	e.Payload = p
	return e, err
}

func encodePayload[T any](s *state, v T) ([]byte, error) {
	switch x := any(v).(type) {
	case []byte:
		if x == nil {
			return []byte{}, nil
		}
		return x, nil
	case string:
		return []byte(x), nil
	}
	p, err := s.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode with %s: %w", s.codec.Name(), err)
	}
	return p, nil
}

// decode returns the value held by e as a T; false if it is of another type
// or does not decode.
func decode[T any](s *state, e *backends.Entry) (T, bool) {
	if e.Value != nil {
		v, ok := e.Value.(T)
		return v, ok
	}
	if e.Payload == nil {
		var zero T
		return zero, false
	}
	return decodePayload[T](s, e.Payload)
}

// decodeEntry is decode with the reason: an error wrapping ErrTypeMismatch
// for a kept value of another type, ErrNotFound for one that does not decode.
func decodeEntry[T any](s *state, e *backends.Entry) (T, error) {
	if v, ok := decode[T](s, e); ok {
		return v, nil
	}
	var zero T
	if e.Value != nil {
		return zero, fmt.Errorf("%w: cached %T, asked for %T", ErrTypeMismatch, e.Value, zero)
	}
	return zero, ErrNotFound
}

// decodePayload is kept apart from decode so that the &v it takes does not
// make every hit allocate; &v itself stays on the stack (only the codec's
// path, in unmarshalPayload, hands a pointer to an interface).
func decodePayload[T any](s *state, p []byte) (T, bool) {
	var v T
	switch x := any(&v).(type) {
	case *[]byte:
		*x = slices.Clone(p)
		if *x == nil {
			*x = []byte{}
		}
	case *string:
		if s.aliasPayloads {
			// The backend never changes p, and a string cannot change it.
			*x = unsafe.String(unsafe.SliceData(p), len(p))
		} else {
			*x = string(p)
		}
	default:
		return unmarshalPayload[T](s, p)
	}
	return v, true
}

// unmarshalPayload decodes p with the region's codec.
func unmarshalPayload[T any](s *state, p []byte) (T, bool) {
	var v T
	if err := s.codec.Unmarshal(p, &v); err != nil {
		s.logger.Debug("regioncache: cached value does not decode; treating as a miss", "err", err)
		var zero T
		return zero, false
	}
	return v, true
}

// Entry is a cached value with its metadata, as GetEntry returns it.
type Entry[T any] struct {
	Value   T
	Created time.Time     // when the value was created
	Age     time.Duration // how old it is, by the region's clock
	Version int           // the writer's schema version
	Tags    []string
	Stale   bool // expired or invalidated (only with IgnoreExpiration)
}

// GetEntry returns the fresh value cached under key with its metadata. A
// miss — absent, expired, invalidated, too old a version, or undecodable —
// is an error wrapping ErrNotFound; a value of another Go type than T is
// an error wrapping ErrTypeMismatch. With IgnoreExpiration, expired and
// invalidated values are returned, marked Stale.
func GetEntry[T any](ctx context.Context, r *Region, key string, opts ...CallOption) (Entry[T], error) {
	s, err := r.load()
	if err != nil {
		return Entry[T]{}, err
	}
	cfg := s.callCfg(opts)
	e, err := s.backend.Get(ctx, s.key(key))
	if err != nil {
		if errors.Is(err, backends.ErrNotFound) {
			s.event(ctx, EventMiss, key, nil, 0)
			return Entry[T]{}, ErrNotFound
		}
		s.event(ctx, EventError, key, err, 0)
		return Entry[T]{}, fmt.Errorf("region %s: get %s: %w", s.name, printable(key), err)
	}
	return entryOf[T](ctx, s, &cfg, key, &e)
}

func entryOf[T any](ctx context.Context, s *state, cfg *callConfig, key string, e *backends.Entry) (Entry[T], error) {
	st := min(s.classify(ctx, e, cfg), fresh) // due is fresh for a reader
	isStale := false
	if cfg.ignoreExpiration && st == fresh {
		strict := *cfg
		strict.ignoreExpiration = false
		isStale = s.classify(ctx, e, &strict) < fresh
	}
	if st != fresh {
		s.event(ctx, EventMiss, key, nil, 0)
		return Entry[T]{}, ErrNotFound
	}
	v, err := decodeEntry[T](s, e)
	if err != nil {
		s.event(ctx, EventMiss, key, nil, 0)
		if errors.Is(err, ErrTypeMismatch) {
			return Entry[T]{}, fmt.Errorf("region %s: get %s: %w", s.name, printable(key), err)
		}
		return Entry[T]{}, ErrNotFound
	}
	if isStale {
		s.event(ctx, EventStaleServed, key, nil, 0)
	} else {
		s.event(ctx, EventHit, key, nil, 0)
	}
	return Entry[T]{Value: v, Created: e.Created, Age: s.now().Sub(e.Created), Version: e.Version,
		Tags: slices.Clone(e.Tags), Stale: isStale}, nil
}

// Get returns the fresh value cached under key. A miss — absent, expired,
// invalidated, too old a version, or undecodable — is an error wrapping
// ErrNotFound; a value of another Go type than T is an error wrapping
// ErrTypeMismatch.
func Get[T any](ctx context.Context, r *Region, key string, opts ...CallOption) (T, error) {
	e, err := GetEntry[T](ctx, r, key, opts...)
	return e.Value, err
}

// GetMulti returns the fresh values cached under keys, in order, and which
// were found. A key whose value is missing, stale or of another type is not
// found (its value is the zero T). Backend failures are errors.
func GetMulti[T any](ctx context.Context, r *Region, keys []string, opts ...CallOption) ([]T, []bool, error) {
	s, err := r.load()
	if err != nil {
		return nil, nil, err
	}
	cfg := s.callCfg(opts)
	bks := make([]string, len(keys))
	for i, k := range keys {
		bks[i] = s.key(k)
	}
	es, err := backends.GetMulti(ctx, s.backend, bks)
	if err == nil && len(es) != len(bks) {
		err = fmt.Errorf("backend returned %d entries for %d keys", len(es), len(bks))
	}
	if err != nil {
		s.event(ctx, EventError, "", err, 0)
		return nil, nil, fmt.Errorf("region %s: get multi: %w", s.name, err)
	}
	vs := make([]T, len(keys))
	found := make([]bool, len(keys))
	for i, e := range es {
		if e == nil {
			s.event(ctx, EventMiss, keys[i], nil, 0)
			continue
		}
		if x, err := entryOf[T](ctx, s, &cfg, keys[i], e); err == nil {
			vs[i], found[i] = x.Value, true
		}
	}
	return vs, found, nil
}

// Set stores v under key, created now, without locking. Unlike a write made
// by GetOrCreate, a failure is returned.
func Set[T any](ctx context.Context, r *Region, key string, v T, opts ...CallOption) error {
	s, err := r.begin()
	if err != nil {
		return err
	}
	defer s.exit()
	cfg := s.callCfg(opts)
	e, err := entryFor(s, v, &cfg)
	if err == nil {
		err = s.backend.Set(ctx, s.key(key), e)
	}
	if err != nil {
		return fmt.Errorf("region %s: set %s: %w", s.name, printable(key), err)
	}
	return nil
}

// SetMulti stores every value of values, created now, without locking, in
// one backend operation where the backend has one. A failure is returned.
func SetMulti[T any](ctx context.Context, r *Region, values map[string]T, opts ...CallOption) error {
	s, err := r.begin()
	if err != nil {
		return err
	}
	defer s.exit()
	cfg := s.callCfg(opts)
	bks := make([]string, 0, len(values))
	es := make([]backends.Entry, 0, len(values))
	for k, v := range values {
		e, err := entryFor(s, v, &cfg)
		if err != nil {
			return fmt.Errorf("region %s: set %s: %w", s.name, printable(k), err)
		}
		bks, es = append(bks, s.key(k)), append(es, e)
	}
	if err := backends.SetMulti(ctx, s.backend, bks, es); err != nil {
		return fmt.Errorf("region %s: set multi: %w", s.name, err)
	}
	return nil
}

// KeyIsLocked reports whether a creator is running for key now, in this
// process or (with a cross-process lock) in any other.
func (r *Region) KeyIsLocked(ctx context.Context, key string) (bool, error) {
	s, err := r.load()
	if err != nil {
		return false, err
	}
	bk := s.key(key)
	if s.flights.inFlight(bk) {
		return true, nil
	}
	if p, ok := s.lock.(lock.Prober); ok {
		held, err := p.IsLocked(ctx, bk)
		if err != nil {
			return false, fmt.Errorf("region %s: probe lock %s: %w", s.name, printable(key), err)
		}
		return held, nil
	}
	h, ok, err := s.lock.TryLock(ctx, bk)
	if err != nil {
		return false, fmt.Errorf("region %s: try-lock %s: %w", s.name, printable(key), err)
	}
	if !ok {
		return true, nil
	}
	if err := h.Unlock(); err != nil {
		return false, fmt.Errorf("region %s: unlock %s: %w", s.name, printable(key), err)
	}
	return false, nil
}
