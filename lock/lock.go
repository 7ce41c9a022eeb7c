// Package lock provides the per-key mutexes behind regioncache's dogpile
// locking: one interface, Locker, and its implementations — an in-process
// keyed mutex (Keyed), and cross-process locks for backends that share
// storage between processes or machines.
//
// A Locker hands out a Handle for a key. The Handle, not the goroutine, owns
// the lock: it may be released from any goroutine, which is what lets a region
// regenerate a value in the background after the caller that won the lock has
// returned.
package lock

import (
	"context"
	"errors"
)

// ErrLost is returned by Handle.Unlock (wrapped) when the lock was no longer
// held at release time: for example a lease-based lock whose lease expired
// while its owner was still working. The protected work may have run
// concurrently with another holder. A lock is never reported as released when
// it was lost.
var ErrLost = errors.New("lock: lock was lost before it was released")

// ErrReleased is returned by Handle.Unlock when the handle was already
// released. Releasing twice is a bug in the caller, but never releases
// somebody else's lock.
var ErrReleased = errors.New("lock: handle already released")

// Locker hands out exclusive locks on keys. Locks on different keys are
// independent: a holder of one key never delays a caller of another.
//
// Implementations must be safe for concurrent use.
type Locker interface {
	// Lock blocks until the lock on key is held, and returns its handle. If
	// ctx ends first, Lock returns ctx.Err() (possibly wrapped) and holds
	// nothing.
	Lock(ctx context.Context, key string) (Handle, error)

	// TryLock takes the lock on key if it is free, without waiting. It
	// reports ok == false, with a nil error, when the lock is held by
	// somebody else. err is non-nil only when the attempt itself failed.
	TryLock(ctx context.Context, key string) (h Handle, ok bool, err error)
}

// Handle is a held lock. It is not tied to the goroutine that took it.
type Handle interface {
	// Unlock releases the lock. It returns an error wrapping ErrReleased if
	// the handle was already released, and one wrapping ErrLost if the lock
	// had been lost before the call (in which case nothing of anybody
	// else's is released).
	Unlock() error
}

// Checker is implemented by handles of locks that can be lost while their
// holder still runs (a lease past its TTL, a lock held by a plugin that
// died). Check returns an error wrapping ErrLost when the lock is no longer
// held. A region checks it before storing a created value, so that a creator
// whose lock was lost does not overwrite the value of the new holder.
type Checker interface {
	Check(ctx context.Context) error
}

// Waiter is implemented by Lockers that can wait for a key's lock to be
// free without taking it. A region's waiters use it to learn that another
// process's creation finished, re-read the value, and take the lock only if
// the value is still missing — instead of every waiter taking and releasing
// the lock in turn.
type Waiter interface {
	// WaitUnlocked returns nil once key's lock is (or was, at some moment
	// after the call) free, or ctx's error. It holds nothing.
	WaitUnlocked(ctx context.Context, key string) error
}

// HeldHinter is implemented by Lockers of locks shared between processes
// that can tell, without a round trip, that a key's lock was recently found
// held by another process and no release has been seen since. The answer may
// lag a release by the time its announcement takes to arrive, so it is only
// a hint: a region's stale readers use it to serve the stale value at once
// instead of each trying the lock, and nothing uses it to decide that a key
// is free.
type HeldHinter interface {
	HeldElsewhere(key string) bool
}

// Prober is implemented by Lockers that can tell whether a key's lock is
// held, by anyone, without taking it (dogpile's key_is_locked). The answer
// may be out of date as soon as it is given. A Locker without it is asked
// with TryLock and an immediate Unlock.
type Prober interface {
	IsLocked(ctx context.Context, key string) (bool, error)
}
