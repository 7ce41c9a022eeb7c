package backends

import (
	"context"

	"github.com/regioncache/regioncache/lock"
)

// FencedSetter is implemented by backends whose own lock (Locking) can fence
// the store that follows a creation: SetFenced stores e under key as Set
// does, but only while h still holds key's lock, checked and written as one
// atomic step in the store itself (a script that compares the lock's token
// before writing, or a monotonic fencing token that the store compares). A
// creator whose lock was lost — a lease that ran out while its process was
// stalled, a lock key lost in a server restart — therefore never overwrites
// the value of the lock's new holder.
//
// h must be a handle that the backend's Locker returned for key. When the
// lock is no longer held, nothing is written and the error wraps
// lock.ErrLost. A handle the backend did not hand out (an in-process lock, a
// backend opened without its distributed lock) gets an error wrapping
// ErrUnsupported, and the caller falls back on Set.
type FencedSetter interface {
	SetFenced(ctx context.Context, key string, e Entry, h lock.Handle) error
}
