// Package lifetime ties cache entries to a Go object (oteapi datacache's
// bind): once the object becomes unreachable and the garbage collector has
// run, the entries are deleted from the region (runtime.AddCleanup).
//
// The deletion is done through the region, so in a backend shared by
// several processes the entry goes for all of them; an entry bound in a
// process that exits or crashes stays, so give bound entries an expiration
// too (region.ExpireAfter) when that matters. Cleanups run after a garbage
// collection that finds the object unreachable, which may be long after
// its last use, or never if the program exits first; an owner must be a
// heap object that is not a tiny pointer-free allocation (runtime batches
// those, and their cleanups may never run) — a struct with a pointer field
// or of 16 bytes or more is safe.
package lifetime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/regioncache/regioncache/region"
)

// deleteTimeout bounds one cleanup's deletion.
const deleteTimeout = time.Minute

// Binding ties entries to an owner; Stop unties them.
type Binding struct {
	cleanup runtime.Cleanup
}

// Stop cancels the binding: the entries are no longer deleted when the
// owner becomes unreachable. It may be called more than once.
func (b *Binding) Stop() {
	if b != nil {
		b.cleanup.Stop()
	}
}

// bound is what the cleanup needs; it must not reference the owner.
type bound struct {
	r    *region.Region
	keys []string
}

// Bind arranges for keys to be deleted from r once owner is unreachable.
// owner must not be nil. Deletion failures are logged with slog.Default;
// a region closed by then is not an error.
func Bind[O any](r *region.Region, owner *O, keys ...string) (*Binding, error) {
	if r == nil {
		return nil, errors.New("lifetime: Bind: region is nil")
	}
	if owner == nil {
		return nil, errors.New("lifetime: Bind: owner is nil; want a pointer to the object whose lifetime the entries share")
	}
	if len(keys) == 0 {
		return nil, errors.New("lifetime: Bind: no keys")
	}
	b := &Binding{cleanup: runtime.AddCleanup(owner, release, bound{r: r, keys: slices.Clone(keys)})}
	return b, nil
}

// release deletes the entries. Cleanups run one at a time on one
// goroutine, so the deletion (backend I/O) runs on its own.
func release(b bound) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		if err := b.r.Delete(ctx, b.keys...); err != nil && !errors.Is(err, region.ErrClosed) {
			slog.Default().Warn("regioncache: lifetime: cannot delete the entries of a collected owner", "keys", len(b.keys), "err", err)
		}
	}()
}

// Set stores v under key in r and binds the entry to owner (see Bind).
func Set[T, O any](ctx context.Context, r *region.Region, key string, v T, owner *O, opts ...region.CallOption) (*Binding, error) {
	if owner == nil {
		return nil, errors.New("lifetime: Set: owner is nil; want a pointer to the object whose lifetime the entry shares")
	}
	if r == nil {
		return nil, errors.New("lifetime: Set: region is nil")
	}
	if err := region.Set(ctx, r, key, v, opts...); err != nil {
		return nil, fmt.Errorf("lifetime: %w", err)
	}
	return Bind(r, owner, key)
}
