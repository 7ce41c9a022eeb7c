// Package minimalbackend is the smallest regioncache backend that passes the
// conformance suite: the four required methods over a mutex-guarded map.
// docs/writing-a-backend.md walks through it.
package minimalbackend

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/regioncache/regioncache/backends"
)

func init() {
	backends.Register("minimal", func(args backends.Args) (backends.Backend, error) {
		if err := args.Only(); err != nil { // reject unknown arguments by name
			return nil, err
		}
		return New(), nil
	})
}

// Backend keeps entries in a map. Its storage is private to the process,
// which it declares with ProcessLocal (saying nothing would be safe too: the
// region would assume the storage is shared).
type Backend struct {
	mu      sync.Mutex
	entries map[string]backends.Entry
	closed  bool
}

// New returns an empty backend.
func New() *Backend { return &Backend{entries: map[string]backends.Entry{}} }

// Get implements backends.Backend.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return backends.Entry{}, fmt.Errorf("minimal: %w", backends.ErrClosed)
	}
	e, ok := b.entries[key]
	if !ok {
		return backends.Entry{}, backends.ErrNotFound
	}
	return e, nil
}

// Set implements backends.Backend. It copies what it keeps: the caller may
// reuse e's slices after Set returns.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	e.Payload, e.Tags, e.Value = slices.Clone(e.Payload), slices.Clone(e.Tags), nil
	if e.Payload == nil {
		e.Payload = []byte{} // an empty value is not a miss
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("minimal: %w", backends.ErrClosed)
	}
	b.entries[key] = e
	return nil
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("minimal: %w", backends.ErrClosed)
	}
	delete(b.entries, key)
	return nil
}

// Close implements backends.Backend; it is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// ProcessLocal implements backends.ProcessLocal.
func (b *Backend) ProcessLocal() bool { return true }
