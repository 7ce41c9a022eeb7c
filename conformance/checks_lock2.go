package conformance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// tryFree requires TryLock to take key (and releases it): nobody holds it.
func tryFree(ctx context.Context, l lock.Locker, key, who, why string) error {
	h, ok, err := l.TryLock(ctx, key)
	if err != nil {
		return fmt.Errorf("%s: TryLock(%s) of a free key: %w (%s)", who, qkey(key), err, why)
	}
	if !ok {
		return fmt.Errorf("%s: TryLock(%s) reports the key held, want it free: %s", who, qkey(key), why)
	}
	if h == nil {
		return fmt.Errorf("%s: TryLock(%s) reported ok with a nil handle", who, qkey(key))
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("%s: Unlock(%s): %w", who, qkey(key), err)
	}
	return nil
}

// checkLockKeys: the hostile and near-identical keys of keys/hostile are as
// independent as lock keys as they are as data keys. Instance A holds a
// part of them; instance B must find exactly that part held and every other
// key free. Several partitions put every pair of neighbours on different
// sides at least once.
func checkLockKeys(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	keys := hostileKeys()
	parts := []struct {
		name string
		in   func(i int) bool
	}{
		{"even", func(i int) bool { return i%2 == 0 }},
		{"pairs", func(i int) bool { return (i/2)%2 == 0 }},
		{"thirds", func(i int) bool { return i%3 == 0 }},
	}
	for _, p := range parts {
		held := map[int]lock.Handle{}
		release := func() {
			for _, h := range held {
				_ = h.Unlock()
			}
		}
		for i, k := range keys {
			if !p.in(i) {
				continue
			}
			h, ok, err := la.TryLock(ctx, k)
			if err != nil {
				release()
				return fmt.Errorf("instance A: TryLock(%s): %w", qkey(k), err)
			}
			if !ok || h == nil {
				release()
				return fmt.Errorf("instance A: TryLock(%s) failed although only other keys are held: lock keys collide (partition %s)", qkey(k), p.name)
			}
			held[i] = h
		}
		for i, k := range keys {
			if p.in(i) {
				if err := tryHeld(ctx, lb, k, "instance B"); err != nil {
					release()
					return err
				}
				continue
			}
			if err := tryFree(ctx, lb, k, "instance B", "only other keys are held, so lock keys collide"); err != nil {
				release()
				return err
			}
		}
		for i, h := range held {
			if err := h.Unlock(); err != nil {
				release()
				return fmt.Errorf("instance A: Unlock(%s): %w", qkey(keys[i]), err)
			}
			delete(held, i)
		}
	}
	// Everything was released: every key is free again.
	for _, k := range keys {
		if err := tryFree(ctx, lb, k, "instance B", "every holder released it"); err != nil {
			return err
		}
	}
	return nil
}

// checkLockAfterFailure: after each failure path — Lock and TryLock with an
// ended context, a wait abandoned by its context, a double release, a
// release from another goroutine, a TryLock that found the key held — the
// key is free for the next taker, in another instance and in the same one.
func checkLockAfterFailure(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	free := func(key, why string) error {
		if err := tryFree(ctx, lb, key, "instance B", why); err != nil {
			return err
		}
		return tryFree(ctx, la, key, "instance A", why)
	}
	for _, dead := range []struct {
		name string
		ctx  context.Context
	}{{"cancelled", cancelled}, {"past its deadline", expired}} {
		key := "ended-lock-" + dead.name
		h, err := la.Lock(dead.ctx, key)
		if err == nil {
			if h == nil {
				return fmt.Errorf("lock: Lock with a context %s returned a nil handle and no error", dead.name)
			}
			if err := h.Unlock(); err != nil && !(e.h.LockEndsWithContext && errors.Is(err, lock.ErrLost)) {
				return fmt.Errorf("lock: Unlock of a lock taken with a context %s: %w", dead.name, err)
			}
		}
		if err := free(key, fmt.Sprintf("a Lock with a context %s returned (%v) and holds nothing", dead.name, err)); err != nil {
			return err
		}
		key = "ended-trylock-" + dead.name
		h, ok, err := la.TryLock(dead.ctx, key)
		if err == nil && ok {
			if h == nil {
				return fmt.Errorf("TryLock with a context %s reported ok with a nil handle", dead.name)
			}
			if err := h.Unlock(); err != nil && !(e.h.LockEndsWithContext && errors.Is(err, lock.ErrLost)) {
				return fmt.Errorf("lock: Unlock of a lock taken with a context %s: %w", dead.name, err)
			}
		}
		if err := free(key, fmt.Sprintf("a TryLock with a context %s returned (ok %v, %v) and holds nothing", dead.name, ok, err)); err != nil {
			return err
		}
	}
	// A wait abandoned by its context, and a TryLock that found the key
	// held, leave nothing behind once the holder releases.
	h, err := lockKey(ctx, la, "waited", "instance A")
	if err != nil {
		return err
	}
	if err := tryHeld(ctx, lb, "waited", "instance B"); err != nil {
		_ = h.Unlock()
		return err
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Millisecond)
	type result struct {
		h   lock.Handle
		err error
	}
	rc := make(chan result, 1)
	e.goSafe(func() {
		hb, err := lb.Lock(wctx, "waited")
		rc <- result{hb, err}
	})
	timer := time.NewTimer(30*time.Millisecond + e.cfg.patience)
	var r result
	select {
	case r = <-rc:
		timer.Stop()
		wcancel()
	case <-timer.C:
		wcancel()
		_ = h.Unlock()
		return fmt.Errorf("instance B: a Lock of a held key did not return within %v of its context's deadline: it must honour ctx while waiting", e.cfg.patience)
	}
	if r.err == nil {
		_ = r.h.Unlock()
		_ = h.Unlock()
		return errors.New("instance B: Lock of a key held by instance A succeeded: the lock is not exclusive")
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("instance A: Unlock: %w", err)
	}
	if err := free("waited", "its holder released it after a TryLock that found it held and a Lock abandoned by its context"); err != nil {
		return err
	}
	// Double release: the key is free, and a second release frees nobody
	// else's lock.
	h, err = lockKey(ctx, la, "twice", "instance A")
	if err != nil {
		return err
	}
	_ = h.Unlock()
	_ = h.Unlock()
	if err := free("twice", "its handle was released twice"); err != nil {
		return err
	}
	// Release from another goroutine.
	h, err = lockKey(ctx, la, "elsewhere", "instance A")
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	e.goSafe(func() { errc <- h.Unlock() })
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("lock: Unlock from another goroutine: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return free("elsewhere", "it was released from another goroutine")
}

// checkLockFenced, for a backend with backends.FencedSetter: SetFenced
// stores while its handle holds the key's lock, and stores nothing — with an
// error wrapping lock.ErrLost — once the lock was released or has passed to
// another holder.
func checkLockFenced(ctx context.Context, e *env) error {
	var bs [2]backends.Backend
	var fs [2]backends.FencedSetter
	var ls [2]lock.Locker
	for i := range bs {
		b, err := e.open(ctx)
		if err != nil {
			return err
		}
		bs[i], ls[i] = b, backends.LockerOf(b)
		var ok bool
		if fs[i], ok = b.(backends.FencedSetter); !ok || ls[i] == nil {
			return errors.New("backend declared fenced-set but an instance lacks FencedSetter or a lock")
		}
	}
	a, fa, la, b, fb, lb := bs[0], fs[0], ls[0], bs[1], fs[1], ls[1]
	h, err := lockKey(ctx, la, "f", "instance A")
	if err != nil {
		return err
	}
	v1 := newEntry([]byte("fenced write while held"), 1, "f")
	if err := fa.SetFenced(ctx, "f", v1, h); err != nil {
		_ = h.Unlock()
		if errors.Is(err, backends.ErrUnsupported) {
			return skipf("SetFenced declines a handle of the backend's own lock (ErrUnsupported): fencing is not available on this instance")
		}
		return fmt.Errorf("SetFenced while holding the key's lock: %w", err)
	}
	if err := e.expect(ctx, a, "f", v1); err != nil {
		_ = h.Unlock()
		return fmt.Errorf("after SetFenced: %w", err)
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("instance A: Unlock: %w", err)
	}
	// Released: a store with the old handle must be refused.
	v2 := newEntry([]byte("fenced write after release"), 2)
	err = fa.SetFenced(ctx, "f", v2, h)
	if err == nil || !errors.Is(err, lock.ErrLost) {
		return fmt.Errorf("SetFenced with a handle whose lock was released returned %v, want an error wrapping lock.ErrLost and nothing stored", err)
	}
	if err := e.expect(ctx, a, "f", v1); err != nil {
		return fmt.Errorf("a refused SetFenced changed the entry: %w", err)
	}
	// Taken over by another instance: the old holder's store is refused,
	// the new holder's accepted.
	hb, err := lockKey(ctx, lb, "f", "instance B")
	if err != nil {
		return err
	}
	defer hb.Unlock()
	err = fa.SetFenced(ctx, "f", v2, h)
	if err == nil || !errors.Is(err, lock.ErrLost) {
		return fmt.Errorf("SetFenced by a former holder while another instance holds the key returned %v, want an error wrapping lock.ErrLost", err)
	}
	v3 := newEntry([]byte("fenced write by the new holder"), 3)
	if err := fb.SetFenced(ctx, "f", v3, hb); err != nil {
		return fmt.Errorf("instance B: SetFenced while holding the key's lock: %w", err)
	}
	if err := e.expect(ctx, b, "f", v3); err != nil {
		return fmt.Errorf("after the new holder's SetFenced: %w", err)
	}
	if !e.has(FeatShared) {
		v3 = v1 // A's own storage still holds its last accepted write
	}
	// A handle for another key fences nothing.
	ho, err := lockKey(ctx, la, "other", "instance A")
	if err != nil {
		return err
	}
	defer ho.Unlock()
	if err := fa.SetFenced(ctx, "f", v2, ho); err == nil {
		return errors.New("SetFenced of key \"f\" with a handle of key \"other\" succeeded: the store is not fenced by the key's own lock")
	}
	if err := e.expect(ctx, a, "f", v3); err != nil {
		return fmt.Errorf("a refused SetFenced changed the entry: %w", err)
	}
	return nil
}
