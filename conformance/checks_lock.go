package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// lockers opens two instances on the check's directory and returns their
// locks. A backend's lock must exclude every holder on the same storage, so
// the two lockers are one lock as far as the checks are concerned.
func (e *env) lockers(ctx context.Context) (lock.Locker, lock.Locker, error) {
	var ls [2]lock.Locker
	for i := range ls {
		b, err := e.open(ctx)
		if err != nil {
			return nil, nil, err
		}
		if ls[i] = backends.LockerOf(b); ls[i] == nil {
			return nil, nil, errors.New("backend declares lock but backends.LockerOf returned nil")
		}
	}
	return ls[0], ls[1], nil
}

func lockKey(ctx context.Context, l lock.Locker, key, who string) (lock.Handle, error) {
	h, err := l.Lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%s: Lock(%s): %w", who, qkey(key), err)
	}
	if h == nil {
		return nil, fmt.Errorf("%s: Lock(%s) returned a nil handle and no error", who, qkey(key))
	}
	return h, nil
}

// tryHeld requires TryLock to report key as held by somebody else.
func tryHeld(ctx context.Context, l lock.Locker, key, who string) error {
	h, ok, err := l.TryLock(ctx, key)
	if err != nil {
		return fmt.Errorf("%s: TryLock(%s) of a held key: %w (want ok == false and no error)", who, qkey(key), err)
	}
	if ok {
		if h != nil {
			_ = h.Unlock()
		}
		return fmt.Errorf("%s: TryLock(%s) took a key that is already held: the lock is not exclusive", who, qkey(key))
	}
	return nil
}

func checkLockExclusive(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	h, err := lockKey(ctx, la, "k", "instance A")
	if err != nil {
		return err
	}
	if err := tryHeld(ctx, lb, "k", "instance B"); err != nil {
		return err
	}
	if err := tryHeld(ctx, la, "k", "instance A (the holder's own instance)"); err != nil {
		return err
	}
	// A blocked Lock in B must not return while A holds the key.
	got := make(chan lock.Handle, 1)
	errc := make(chan error, 1)
	var acquired atomic.Bool
	go func() {
		h, err := lockKey(ctx, lb, "k", "instance B")
		acquired.Store(err == nil)
		errc <- err
		got <- h
	}()
	time.Sleep(20 * time.Millisecond)
	if acquired.Load() {
		_ = h.Unlock()
		return errors.New("instance B: Lock returned while instance A held the key: the lock is not exclusive")
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("instance A: Unlock: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("waiting for a key released by another instance: %w", err)
	}
	hb := <-got
	if err := tryHeld(ctx, la, "k", "instance A after B took the key"); err != nil {
		_ = hb.Unlock()
		return err
	}
	if err := hb.Unlock(); err != nil {
		return fmt.Errorf("instance B: Unlock: %w", err)
	}

	// Contention: goroutines on both instances take the same key; at most
	// one may be inside at a time.
	const workers, rounds = 6, 40
	var inside, overlaps, entries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		l := la
		if w%2 == 1 {
			l = lb
		}
		wg.Add(1)
		go func(w int, l lock.Locker) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				h, err := lockKey(ctx, l, "contended", fmt.Sprintf("worker %d", w))
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				entries.Add(1)
				runtime.Gosched()
				time.Sleep(50 * time.Microsecond)
				inside.Add(-1)
				if err := h.Unlock(); err != nil {
					errs <- fmt.Errorf("worker %d: Unlock: %w", w, err)
					return
				}
			}
		}(w, l)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if n := overlaps.Load(); n > 0 {
		return fmt.Errorf("%d of %d critical sections overlapped another holder of the same key: the lock is not exclusive", n, entries.Load())
	}
	return nil
}

func checkTryLock(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	h, ok, err := la.TryLock(ctx, "k")
	if err != nil || !ok || h == nil {
		return fmt.Errorf("TryLock of a free key = (handle %v, ok %v, err %v), want a handle", h != nil, ok, err)
	}
	if err := tryHeld(ctx, lb, "k", "instance B"); err != nil {
		return err
	}
	// Other keys are independent.
	h2, ok, err := lb.TryLock(ctx, "other")
	if err != nil || !ok {
		return fmt.Errorf("TryLock of a different key while \"k\" is held = (ok %v, err %v), want the lock: keys must be independent", ok, err)
	}
	if err := h2.Unlock(); err != nil {
		return fmt.Errorf("releasing: %w", err)
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("releasing: %w", err)
	}
	h3, ok, err := lb.TryLock(ctx, "k")
	if err != nil || !ok {
		return fmt.Errorf("TryLock after the holder released the key = (ok %v, err %v), want the lock", ok, err)
	}
	return h3.Unlock()
}

func checkUnlockElsewhere(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	hc := make(chan lock.Handle)
	errc := make(chan error, 2)
	go func() { // the owner takes the lock and returns
		h, err := lockKey(ctx, la, "k", "owner goroutine")
		if err != nil {
			errc <- err
			close(hc)
			return
		}
		hc <- h
	}()
	h, ok := <-hc
	if !ok {
		return <-errc
	}
	if err := tryHeld(ctx, lb, "k", "instance B"); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { // another goroutine releases it
		defer close(done)
		if err := h.Unlock(); err != nil {
			errc <- fmt.Errorf("releasing from a goroutine other than the one that locked: %w", err)
		}
	}()
	<-done
	select {
	case err := <-errc:
		return err
	default:
	}
	hb, ok, err := lb.TryLock(ctx, "k")
	if err != nil || !ok {
		return fmt.Errorf("TryLock after another goroutine released the key = (ok %v, err %v), want the lock", ok, err)
	}
	return hb.Unlock()
}

func checkReleaseTwice(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	h, err := lockKey(ctx, la, "k", "instance A")
	if err != nil {
		return err
	}
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("first Unlock: %w", err)
	}
	if err := h.Unlock(); !errors.Is(err, lock.ErrReleased) {
		return fmt.Errorf("second Unlock of one handle returned %v, want an error wrapping lock.ErrReleased", err)
	}
	// A stale handle must not release the next holder's lock.
	hb, err := lockKey(ctx, lb, "k", "instance B")
	if err != nil {
		return err
	}
	if err := h.Unlock(); !errors.Is(err, lock.ErrReleased) {
		_ = hb.Unlock()
		return fmt.Errorf("third Unlock of a released handle while another holds the key returned %v, want lock.ErrReleased", err)
	}
	if err := tryHeld(ctx, la, "k", "instance A after its stale handle was released again"); err != nil {
		_ = hb.Unlock()
		return fmt.Errorf("%w (a released handle released somebody else's lock)", err)
	}
	return hb.Unlock()
}

// checkLockCancel: a Lock waiting for a held key returns promptly with the
// context's error when its context is cancelled, holding nothing.
func checkLockCancel(ctx context.Context, e *env) error {
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	h, err := lockKey(ctx, la, "k", "instance A")
	if err != nil {
		return err
	}
	released := false
	defer func() {
		if !released {
			_ = h.Unlock()
		}
	}()
	type result struct {
		h   lock.Handle
		err error
	}
	for _, mode := range []string{"cancel", "deadline"} {
		var wctx context.Context
		var cancel context.CancelFunc
		if mode == "cancel" {
			wctx, cancel = context.WithCancel(ctx)
		} else {
			wctx, cancel = context.WithTimeout(ctx, 30*time.Millisecond)
		}
		rc := make(chan result, 1)
		go func() {
			h, err := lb.Lock(wctx, "k")
			rc <- result{h, err}
		}()
		if mode == "cancel" {
			time.Sleep(20 * time.Millisecond) // let it start waiting
			cancel()
		}
		timer := time.NewTimer(e.cfg.patience)
		var r result
		select {
		case r = <-rc:
			timer.Stop()
		case <-timer.C:
			cancel()
			// Release A so that the stuck Lock can finish, then report.
			_ = h.Unlock()
			released = true
			if r := <-rc; r.h != nil {
				_ = r.h.Unlock()
			}
			return fmt.Errorf("a Lock of a held key did not return within %v of its context ending (%s): it must honour ctx while waiting", e.cfg.patience, mode)
		}
		cancel()
		if r.err == nil {
			if r.h != nil {
				_ = r.h.Unlock()
			}
			return fmt.Errorf("a Lock of a key held by another instance succeeded (%s): the lock is not exclusive", mode)
		}
		if !isCtxErr(r.err) {
			return fmt.Errorf("a Lock whose context ended (%s) returned %q, want an error wrapping the context's error", mode, r.err)
		}
	}
	// The abandoned waits left nothing behind: after A releases, B can lock.
	if err := h.Unlock(); err != nil {
		return fmt.Errorf("instance A: Unlock: %w", err)
	}
	released = true
	hb, ok, err := lb.TryLock(ctx, "k")
	if err != nil || !ok {
		return fmt.Errorf("TryLock after cancelled waits and a release = (ok %v, err %v), want the lock: a cancelled Lock kept something", ok, err)
	}
	return hb.Unlock()
}

// checkLockOwnerContext, for a backend that declares
// Harness.LockEndsWithContext: the lock is freed when its owner's context
// ends.
func checkLockOwnerContext(ctx context.Context, e *env) error {
	if !e.h.LockEndsWithContext {
		return skipf("harness does not declare LockEndsWithContext: the lock is held until Unlock")
	}
	la, lb, err := e.lockers(ctx)
	if err != nil {
		return err
	}
	octx, cancel := context.WithCancel(ctx)
	h, err := lockKey(octx, la, "k", "owner")
	if err != nil {
		cancel()
		return err
	}
	if err := tryHeld(ctx, lb, "k", "instance B"); err != nil {
		cancel()
		return err
	}
	cancel()
	wctx, wcancel := context.WithTimeout(ctx, e.cfg.patience)
	defer wcancel()
	hb, err := lb.Lock(wctx, "k")
	if err != nil {
		return fmt.Errorf("a Lock after the owner's context ended: %w (the lock was not freed within %v)", err, e.cfg.patience)
	}
	_ = h.Unlock() // may report ErrLost or ErrReleased; it must not free B's lock
	if err := tryHeld(ctx, la, "k", "instance A after its owner's stale Unlock"); err != nil {
		_ = hb.Unlock()
		return err
	}
	return hb.Unlock()
}
