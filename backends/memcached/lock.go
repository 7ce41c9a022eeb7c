package memcached

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/regioncache/regioncache/lock"
)

// Lock is the memcached backend's [lock.Locker]: a lease held in a
// memcached item (see the package doc). It excludes every process that uses
// the same servers and prefix. Like the Redis lock it is an efficiency lock,
// not a consensus protocol; the fenced store (Backend.SetFenced) is what
// keeps a holder whose lease ran out from overwriting its successor.
//
// Goroutines of one process first queue on an in-process [lock.Keyed] mutex,
// so a process polls memcached at most once per key at a time.
type Lock struct {
	b     *Backend
	ttl   time.Duration
	renew time.Duration
	local lock.Keyed
}

// Polling of a held lock: from pollMin, doubling up to pollMax.
const (
	pollMin = time.Millisecond
	pollMax = 10 * time.Millisecond
)

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// try adds the lock item once; it reports whether the lock was taken.
func (l *Lock) try(key, token string) (bool, error) {
	err := l.b.client.Add(&memcache.Item{Key: l.b.mkey("l", key), Value: []byte(token), Expiration: expiration(l.ttl)})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, memcache.ErrNotStored):
		return false, nil
	default:
		return false, fmt.Errorf("memcached lock %s: %w", shortKey(key), err)
	}
}

// fence returns the next fencing token of key: a per-key counter, started
// at the current Unix time in nanoseconds when missing (first use, or
// evicted), so that tokens keep growing across evictions.
func (l *Lock) fence(key string) (uint64, error) {
	fk := l.b.mkey("f", key)
	for attempt := 0; attempt < 3; attempt++ {
		n, err := l.b.client.Increment(fk, 1)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return 0, fmt.Errorf("memcached lock %s: fencing token: %w", shortKey(key), err)
		}
		err = l.b.client.Add(&memcache.Item{Key: fk, Value: []byte(strconv.FormatInt(time.Now().UnixNano(), 10))})
		if err != nil && !errors.Is(err, memcache.ErrNotStored) {
			return 0, fmt.Errorf("memcached lock %s: fencing token: %w", shortKey(key), err)
		}
	}
	return 0, fmt.Errorf("memcached lock %s: fencing token: counter keeps disappearing", shortKey(key))
}

// acquired completes a successful add: it takes a fencing token and starts
// the renewals. If the token cannot be had, the lock is released.
func (l *Lock) acquired(key, token string, local lock.Handle) (*LockHandle, error) {
	f, err := l.fence(key)
	h := &LockHandle{l: l, key: key, token: token, fence: f, local: local,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go h.renewLoop()
	if err != nil {
		_ = h.Unlock()
		return nil, err
	}
	return h, nil
}

// Lock implements [lock.Locker]: it waits, polling, until the lock is free
// (or its holder's lease runs out), ctx ends, or memcached fails.
func (l *Lock) Lock(ctx context.Context, key string) (lock.Handle, error) {
	if err := l.b.check(ctx); err != nil {
		return nil, err
	}
	lh, err := l.local.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	token := newToken()
	wait := pollMin
	for {
		ok, err := l.try(key, token)
		if err != nil {
			_ = lh.Unlock()
			return nil, err
		}
		if ok {
			return l.acquired(key, token, lh)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			_ = lh.Unlock()
			return nil, err
		}
		wait = min(2*wait, pollMax)
	}
}

// TryLock implements [lock.Locker] with one "add".
func (l *Lock) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	if err := l.b.check(ctx); err != nil {
		return nil, false, err
	}
	lh, ok, err := l.local.TryLock(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	token := newToken()
	ok, err = l.try(key, token)
	if err != nil || !ok {
		_ = lh.Unlock()
		return nil, false, err
	}
	h, err := l.acquired(key, token, lh)
	if err != nil {
		return nil, false, err
	}
	return h, true, nil
}

// WaitUnlocked implements [lock.Waiter]: it polls until the lock item is
// gone, without taking it.
func (l *Lock) WaitUnlocked(ctx context.Context, key string) error {
	wait := pollMin
	for {
		if err := l.b.check(ctx); err != nil {
			return err
		}
		_, err := l.b.client.Get(l.b.mkey("l", key))
		if errors.Is(err, memcache.ErrCacheMiss) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("memcached lock %s: wait: %w", shortKey(key), err)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, pollMax)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LockHandle is a held memcached lock. Its lease is renewed in the
// background until Unlock.
type LockHandle struct {
	l     *Lock
	key   string
	token string
	fence uint64
	local lock.Handle

	lostOnce sync.Once
	lost     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	released atomic.Bool
}

// Fence returns the handle's fencing token: larger than that of every
// earlier holder of the key's lock.
func (h *LockHandle) Fence() uint64 { return h.fence }

// Lost returns a channel closed when the holder learns that the lock was
// lost (its lease ran out, or another holder replaced it).
func (h *LockHandle) Lost() <-chan struct{} { return h.lost }

func (h *LockHandle) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

// owned reads the lock item and reports whether it still carries our token
// (with the item, for a compare-and-swap).
func (h *LockHandle) owned() (*memcache.Item, bool, error) {
	it, err := h.l.b.client.Get(h.l.b.mkey("l", h.key))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return it, string(it.Value) == h.token, nil
}

func (h *LockHandle) renewLoop() {
	defer close(h.done)
	lastOK := time.Now()
	t := time.NewTicker(h.l.renew)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		it, ok, err := h.owned()
		if err == nil && ok {
			it.Expiration = expiration(h.l.ttl)
			err = h.l.b.client.CompareAndSwap(it)
			if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
				ok, err = false, nil
			}
		}
		switch {
		case err == nil && ok:
			lastOK = start
		case err == nil:
			h.markLost() // expired, or somebody else's now
			return
		case time.Since(lastOK) >= h.l.ttl:
			h.markLost() // memcached unreachable for a whole lease
			return
		}
	}
}

// Check implements [lock.Checker]: lock.ErrLost if the lock is known lost,
// was released (then lock.ErrReleased too), or its item no longer carries
// this handle's token.
func (h *LockHandle) Check(ctx context.Context) error {
	select {
	case <-h.lost:
		return fmt.Errorf("memcached lock %s: %w", shortKey(h.key), lock.ErrLost)
	default:
	}
	if h.released.Load() {
		return fmt.Errorf("memcached lock %s: %w: %w", shortKey(h.key), lock.ErrLost, lock.ErrReleased)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, ok, err := h.owned()
	if err != nil {
		return fmt.Errorf("memcached lock %s: check: %w", shortKey(h.key), err)
	}
	if !ok {
		h.markLost()
		return fmt.Errorf("memcached lock %s: %w", shortKey(h.key), lock.ErrLost)
	}
	return nil
}

// Unlock implements [lock.Handle]. It expires the lock item with a
// compare-and-swap on this handle's token (memcached's delete cannot be
// conditional), so it never releases another holder's lock; a lock that was
// lost is lock.ErrLost.
func (h *LockHandle) Unlock() error {
	if h.released.Swap(true) {
		return lock.ErrReleased
	}
	close(h.stop)
	<-h.done
	defer func() {
		if h.local != nil {
			_ = h.local.Unlock()
		}
	}()
	select {
	case <-h.lost:
		return fmt.Errorf("memcached lock %s: %w", shortKey(h.key), lock.ErrLost)
	default:
	}
	it, ok, err := h.owned()
	if err == nil && ok {
		it.Value, it.Expiration = []byte("released"), -1 // a negative expiry expires the item at once
		err = h.l.b.client.CompareAndSwap(it)
		if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
			ok, err = false, nil
		}
	}
	if err != nil {
		return fmt.Errorf("memcached lock %s: release: %w", shortKey(h.key), err)
	}
	if !ok {
		h.markLost()
		return fmt.Errorf("memcached lock %s: %w", shortKey(h.key), lock.ErrLost)
	}
	return nil
}
