package lock

import (
	"context"
	"sync"
)

// Keyed is an in-process Locker with one mutex per key, created when a key is
// first locked and dropped when its last holder or waiter leaves. Unrelated
// keys never contend (there is no striping), so a holder of one key may lock
// another without risk of deadlocking on a shared stripe.
//
// The zero value is ready to use. A Keyed must not be copied after first use.
type Keyed struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

// keyedEntry is the mutex of one key. sem has capacity one: a token in it
// means held. refs counts holders and waiters so that the entry is dropped
// from the map exactly when nobody can still use it.
type keyedEntry struct {
	sem  chan struct{}
	refs int
}

// NewKeyed returns an empty keyed mutex. It is the same as new(Keyed).
func NewKeyed() *Keyed { return new(Keyed) }

func (k *Keyed) acquireEntry(key string) *keyedEntry {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{sem: make(chan struct{}, 1)}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	return e
}

func (k *Keyed) releaseEntry(key string, e *keyedEntry) {
	k.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(k.locks, key)
	}
	k.mu.Unlock()
}

// Lock implements Locker. It waits for the key's mutex or for ctx to end.
func (k *Keyed) Lock(ctx context.Context, key string) (Handle, error) {
	e := k.acquireEntry(key)
	select {
	case e.sem <- struct{}{}:
		return &keyedHandle{k: k, key: key, e: e}, nil
	default:
	}
	select {
	case e.sem <- struct{}{}:
		return &keyedHandle{k: k, key: key, e: e}, nil
	case <-ctx.Done():
		k.releaseEntry(key, e)
		return nil, ctx.Err()
	}
}

// TryLock implements Locker.
func (k *Keyed) TryLock(ctx context.Context, key string) (Handle, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	e := k.acquireEntry(key)
	select {
	case e.sem <- struct{}{}:
		return &keyedHandle{k: k, key: key, e: e}, true, nil
	default:
		k.releaseEntry(key, e)
		return nil, false, nil
	}
}

// Len reports how many keys currently have a holder or a waiter. It exists
// for tests and diagnostics.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}

type keyedHandle struct {
	k    *Keyed
	key  string
	e    *keyedEntry
	once sync.Once
}

func (h *keyedHandle) Unlock() error {
	released := false
	h.once.Do(func() {
		<-h.e.sem
		h.k.releaseEntry(h.key, h.e)
		released = true
	})
	if !released {
		return ErrReleased
	}
	return nil
}

// IsLocked implements Prober.
func (k *Keyed) IsLocked(ctx context.Context, key string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.locks[key]
	return e != nil && len(e.sem) == 1, nil
}
