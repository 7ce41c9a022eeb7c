// Package null is the regioncache backend that stores nothing, registered as
// "null": every Get is a miss, so every GetOrCreate runs its creator. Use it
// in tests and to switch a cache off without changing code. It takes no
// arguments.
package null

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/regioncache/regioncache/backends"
)

func init() {
	backends.Register("null", func(args backends.Args) (backends.Backend, error) {
		if err := args.Only(); err != nil {
			return nil, err
		}
		return New(), nil
	})
}

// Backend discards every write.
type Backend struct{ closed atomic.Bool }

// New returns a null backend.
func New() *Backend { return new(Backend) }

// Discards implements backends.Discarder: the null backend keeps nothing, so
// regions run every creator without locking and the conformance suite skips
// the checks that need stored values.
func (b *Backend) Discards() bool { return true }

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("null: %w", backends.ErrClosed)
	}
	return nil
}

// Get implements backends.Backend: always a miss.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	return backends.Entry{}, backends.ErrNotFound
}

// Set implements backends.Backend: discards e.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error { return b.check(ctx) }

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error { return b.check(ctx) }

// Close implements backends.Backend.
func (b *Backend) Close() error { b.closed.Store(true); return nil }
