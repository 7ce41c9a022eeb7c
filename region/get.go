package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// callCfg applies opts over the region's defaults.
func (s *state) callCfg(opts []CallOption) callConfig {
	c := callConfig{expiration: s.expiration}
	for _, o := range opts {
		if o != nil {
			o.applyCall(&c)
		}
	}
	return c
}

// GetOrCreate returns the value cached under key, creating it with create
// when it is missing or stale, with dogpile locking: among all callers that
// share the region's backend, one runs create and the others wait for its
// value, or are served the stale value meanwhile (see the package doc).
//
// create's error is returned to the caller that ran it and nothing is cached.
// A failure to store a created value is logged and counted; the value is
// still returned. Backend read failures are returned as errors.
func GetOrCreate[T any](ctx context.Context, r *Region, key string, create func(context.Context) (T, error), opts ...CallOption) (T, error) {
	var zero T
	s, err := r.load()
	if err != nil {
		return zero, err
	}
	exp := s.expiration
	if len(opts) > 0 {
		exp = s.callCfg(opts).expiration
	}
	bk := s.key(key)
	e, err := s.backend.Get(ctx, bk)
	if err == nil {
		if st := s.classify(ctx, &e, exp); st != missing {
			if v, ok := decode[T](s, &e); ok {
				if st == fresh {
					s.hit(key)
					return v, nil
				}
				return getOrCreateSlow(ctx, s, key, bk, true, v, create, opts)
			}
		}
	} else if !errors.Is(err, backends.ErrNotFound) {
		s.event(EventError, key, err)
		return zero, fmt.Errorf("region %s: get %s: %w", s.name, printable(key), err)
	}
	return getOrCreateSlow(ctx, s, key, bk, false, zero, create, opts)
}

// getOrCreateSlow is everything but a hit. It is a function of its own so
// that the call configuration it builds never costs a hit an allocation.
func getOrCreateSlow[T any](ctx context.Context, s *state, key, bk string, isStale bool, v T, create func(context.Context) (T, error), opts []CallOption) (T, error) {
	cfg := s.callCfg(opts)
	if isStale {
		return getOrCreateStale(ctx, s, key, bk, v, create, &cfg)
	}
	return getOrCreateMissing(ctx, s, key, bk, create, &cfg)
}

// getOrCreateStale handles a stale value v: try the lock without waiting;
// serve v if another caller holds it.
func getOrCreateStale[T any](ctx context.Context, s *state, key, bk string, v T, create func(context.Context) (T, error), cfg *callConfig) (T, error) {
	if cfg.waitFresh {
		return getOrCreateMissing(ctx, s, key, bk, create, cfg)
	}
	h, ok, err := s.lock.TryLock(ctx, bk)
	if err != nil {
		// The lock's store is unreachable; the stale value is still the best
		// answer we have.
		s.logger.Warn("regioncache: try-lock failed; serving stale value", "key", printable(key), "err", err)
		s.event(EventError, key, err)
		s.event(EventStaleServed, key, nil)
		return v, nil
	}
	if !ok {
		s.event(EventStaleServed, key, nil)
		return v, nil
	}
	if cfg.background {
		s.bg.Add(1)
		bctx := context.WithoutCancel(ctx)
		go func() {
			defer s.bg.Done()
			defer s.unlock(h, key)
			defer func() {
				if p := recover(); p != nil {
					err := fmt.Errorf("panic in background creator: %v", p)
					s.logger.Error("regioncache: background regeneration panicked", "key", printable(key), "panic", p)
					s.event(EventError, key, err)
				}
			}()
			if _, err := runCreator(bctx, s, key, bk, create, cfg); err != nil {
				s.logger.Warn("regioncache: background regeneration failed", "key", printable(key), "err", err)
			}
		}()
		s.event(EventStaleServed, key, nil)
		return v, nil
	}
	defer s.unlock(h, key)
	// Somebody may have regenerated between our read and our lock.
	if nv, ok := reread[T](ctx, s, bk, cfg); ok {
		s.event(EventHit, key, nil)
		return nv, nil
	}
	return runCreator(ctx, s, key, bk, create, cfg)
}

// getOrCreateMissing waits for the key's lock, re-reads, and creates only if
// the value is still not fresh.
func getOrCreateMissing[T any](ctx context.Context, s *state, key, bk string, create func(context.Context) (T, error), cfg *callConfig) (T, error) {
	var zero T
	s.event(EventMiss, key, nil)
	h, err := s.lockWait(ctx, key, bk)
	if err != nil {
		return zero, err
	}
	defer s.unlock(h, key)
	if v, ok := reread[T](ctx, s, bk, cfg); ok {
		s.event(EventHit, key, nil)
		return v, nil
	}
	return runCreator(ctx, s, key, bk, create, cfg)
}

// lockWait takes the key's lock, counting a wait when it is contended.
func (s *state) lockWait(ctx context.Context, key, bk string) (lock.Handle, error) {
	h, ok, err := s.lock.TryLock(ctx, bk)
	if err == nil && ok {
		return h, nil
	}
	if err == nil {
		s.event(EventLockWait, key, nil)
		h, err = s.lock.Lock(ctx, bk)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.event(EventError, key, err)
		}
		return nil, fmt.Errorf("region %s: lock %s: %w", s.name, printable(key), err)
	}
	return h, nil
}

// reread reads bk again and reports a fresh, decodable value.
func reread[T any](ctx context.Context, s *state, bk string, cfg *callConfig) (T, bool) {
	var zero T
	e, err := s.backend.Get(ctx, bk)
	if err != nil || s.classify(ctx, &e, cfg.expiration) != fresh {
		return zero, false
	}
	return decode[T](s, &e)
}

// runCreator runs create (the caller holds the lock) and stores its value.
func runCreator[T any](ctx context.Context, s *state, key, bk string, create func(context.Context) (T, error), cfg *callConfig) (T, error) {
	v, err := create(ctx)
	if err != nil {
		s.event(EventError, key, err)
		var zero T
		return zero, err
	}
	s.event(EventCreated, key, nil)
	if keep, ok := cfg.shouldCache.(func(T) bool); ok && !keep(v) {
		return v, nil
	}
	if err := store(ctx, s, bk, v, cfg); err != nil {
		s.logger.Warn("regioncache: cannot store created value", "key", printable(key), "err", err)
		s.event(EventWriteError, key, err)
	}
	return v, nil
}

// entryFor builds the entry for v.
func entryFor[T any](s *state, v T, cfg *callConfig) (backends.Entry, error) {
	e := backends.Entry{Created: time.Now(), Version: s.version, Tags: cfg.tags}
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

func store[T any](ctx context.Context, s *state, bk string, v T, cfg *callConfig) error {
	e, err := entryFor(s, v, cfg)
	if err != nil {
		return err
	}
	return s.backend.Set(ctx, bk, e)
}

// decode returns the value held by e as a T. A kept value of another type,
// or a payload that does not decode, reports false (a miss).
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

// decodePayload is kept apart from decode so that the &v it takes does not
// make every hit allocate.
func decodePayload[T any](s *state, p []byte) (T, bool) {
	var v T
	switch x := any(&v).(type) {
	case *[]byte:
		*x = slices.Clone(p)
		if *x == nil {
			*x = []byte{}
		}
	case *string:
		*x = string(p)
	default:
		if err := s.codec.Unmarshal(p, &v); err != nil {
			s.logger.Debug("regioncache: cached value does not decode; treating as a miss", "err", err)
			var zero T
			return zero, false
		}
	}
	return v, true
}

// Get returns the fresh value cached under key. A miss — absent, expired,
// invalidated, too old a version, or undecodable — is an error wrapping
// ErrNotFound.
func Get[T any](ctx context.Context, r *Region, key string, opts ...CallOption) (T, error) {
	var zero T
	s, err := r.load()
	if err != nil {
		return zero, err
	}
	cfg := s.callCfg(opts)
	e, err := s.backend.Get(ctx, s.key(key))
	if err != nil {
		if errors.Is(err, backends.ErrNotFound) {
			s.event(EventMiss, key, nil)
			return zero, ErrNotFound
		}
		s.event(EventError, key, err)
		return zero, fmt.Errorf("region %s: get %s: %w", s.name, printable(key), err)
	}
	if s.classify(ctx, &e, cfg.expiration) == fresh {
		if v, ok := decode[T](s, &e); ok {
			s.event(EventHit, key, nil)
			return v, nil
		}
	}
	s.event(EventMiss, key, nil)
	return zero, ErrNotFound
}

// Set stores v under key, created now, without locking. Unlike a write made
// by GetOrCreate, a failure is returned.
func Set[T any](ctx context.Context, r *Region, key string, v T, opts ...CallOption) error {
	s, err := r.load()
	if err != nil {
		return err
	}
	cfg := s.callCfg(opts)
	if err := store(ctx, s, s.key(key), v, &cfg); err != nil {
		return fmt.Errorf("region %s: set %s: %w", s.name, printable(key), err)
	}
	return nil
}
