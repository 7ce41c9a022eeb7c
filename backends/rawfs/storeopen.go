package rawfs

import (
	"context"
	"os"

	"github.com/regioncache/regioncache/backends"
)

// StoreFileOpen stores f like StoreFile and returns a read-only file on the
// bytes it stored, opened before the store committed them: eviction, a
// Delete or a newer write that removes the entry right afterwards cannot take
// them from the caller (region.GetOrCreateFile uses it to hand a creation's
// caller exactly the creator's bytes). If the store fails after f was moved
// into the cache, f is moved back to its path first; f is never closed.
func (b *Backend) StoreFileOpen(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) (*os.File, error) {
	return b.a.StoreFileOpen(ctx, key, f, e, move)
}
