package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// Capabilities is a set of optional abilities a backend declares.
type Capabilities uint32

// The capabilities. Most correspond to an optional interface; a backend that
// implements the interface but reports Capabilities without the bit (for
// example a plugin client whose plugin lacks it) does not have it.
const (
	CapMulti         Capabilities = 1 << iota // MultiGetter, MultiSetter, MultiDeleter natively
	CapLock                                   // Locking
	CapStorageExpiry                          // StorageExpirer with a non-zero TTL
	CapTags                                   // TagEvicter
	CapList                                   // Lister and StatReporter
	CapFiles                                  // FileStore
	CapSharedStorage                          // instances opened with the same arguments share entries
	CapDiscards                               // stores nothing: every Get is a miss (the null backend)
	CapKeepsValues                            // ValueKeeper reporting true
)

var capNames = []string{"multi", "lock", "storage-expiry", "tags", "list", "files", "shared-storage", "discards", "keeps-values"}

// String lists the set bits by name, e.g. "lock|tags".
func (c Capabilities) String() string {
	var parts []string
	for i, n := range capNames {
		if c&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Capabler is implemented by backends that declare their capabilities
// explicitly. Backends that do not implement it are judged by the optional
// interfaces they implement alone.
type Capabler interface {
	Capabilities() Capabilities
}

// CapabilitiesOf reports the capabilities of b: the declared set if b
// implements Capabler, otherwise the set implied by the optional interfaces
// it implements.
func CapabilitiesOf(b Backend) Capabilities {
	if c, ok := b.(Capabler); ok {
		return c.Capabilities()
	}
	var c Capabilities
	_, g := b.(MultiGetter)
	_, s := b.(MultiSetter)
	_, d := b.(MultiDeleter)
	if g && s && d {
		c |= CapMulti
	}
	if _, ok := b.(Locking); ok {
		c |= CapLock
	}
	if e, ok := b.(StorageExpirer); ok && e.StorageTTL() > 0 {
		c |= CapStorageExpiry
	}
	if _, ok := b.(TagEvicter); ok {
		c |= CapTags
	}
	if _, ok := b.(Lister); ok {
		c |= CapList
	}
	if _, ok := b.(FileStore); ok {
		c |= CapFiles
	}
	if v, ok := b.(ValueKeeper); ok && v.KeepsValues() {
		c |= CapKeepsValues
	}
	return c
}

// Has reports whether b has every capability in c.
func Has(b Backend, c Capabilities) bool { return CapabilitiesOf(b)&c == c }

// LockerOf returns the backend's own lock, or nil if it has none.
func LockerOf(b Backend) lock.Locker {
	if l, ok := b.(Locking); ok && Has(b, CapLock) {
		return l.Locker()
	}
	return nil
}

// KeepsValues reports whether the region should hand b unencoded Go values.
func KeepsValues(b Backend) bool {
	v, ok := b.(ValueKeeper)
	return ok && v.KeepsValues() && Has(b, CapKeepsValues)
}

// StorageTTL returns b's storage expiry, or zero if it has none.
func StorageTTL(b Backend) time.Duration {
	if e, ok := b.(StorageExpirer); ok && Has(b, CapStorageExpiry) {
		return e.StorageTTL()
	}
	return 0
}

// GetMulti reads keys through b's MultiGetter, or one Get at a time. The result
// has one element per key, in order; nil marks a miss. Errors other than
// ErrNotFound stop the fallback and are returned.
func GetMulti(ctx context.Context, b Backend, keys []string) ([]*Entry, error) {
	if m, ok := b.(MultiGetter); ok && Has(b, CapMulti) {
		return m.GetMulti(ctx, keys)
	}
	out := make([]*Entry, len(keys))
	for i, k := range keys {
		e, err := b.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = &e
	}
	return out, nil
}

// SetMulti writes entries through b's MultiSetter, or one Set at a time.
func SetMulti(ctx context.Context, b Backend, keys []string, entries []Entry) error {
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", ErrBadArgument, len(keys), len(entries))
	}
	if m, ok := b.(MultiSetter); ok && Has(b, CapMulti) {
		return m.SetMulti(ctx, keys, entries)
	}
	for i, k := range keys {
		if err := b.Set(ctx, k, entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMulti deletes keys through b's MultiDeleter, or one Delete at a time.
func DeleteMulti(ctx context.Context, b Backend, keys []string) error {
	if m, ok := b.(MultiDeleter); ok && Has(b, CapMulti) {
		return m.DeleteMulti(ctx, keys)
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// ProcessLocal is implemented by backends whose entries no other process can
// see (an in-process map). Storage is assumed shared across processes unless
// the backend declares otherwise: a region over shared storage re-reads the
// region-wide invalidation marks that other processes store, so a backend
// author who says nothing gets the safe behaviour.
type ProcessLocal interface {
	// ProcessLocal reports true when the backend's entries are private to
	// this process.
	ProcessLocal() bool
}

// IsShared reports whether b's storage may be seen by other processes: true
// unless b declares ProcessLocal, or discards everything (CapDiscards).
func IsShared(b Backend) bool {
	if p, ok := b.(ProcessLocal); ok && p.ProcessLocal() {
		return false
	}
	return !Has(b, CapDiscards)
}
