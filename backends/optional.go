package backends

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// The contract has one way to declare an optional ability: implement its
// interface. An instance that has the interface but cannot serve it at run
// time (a plugin whose plugin lacks it, a proxy over a backend without it, a
// backend opened without a lock) declines: its methods return an error
// wrapping ErrUnsupported, Locker returns nil, StorageTTL returns zero,
// KeepsValues returns false. The helpers below turn both forms into one
// answer, and fall back where a fallback exists.
//
// Three declarations have no operation behind them and so are interfaces of
// one method each, with safe defaults for a backend that says nothing:
// ProcessLocal (default: storage shared across processes, so invalidation
// marks are re-read), Discarder (default: the backend keeps what it is
// given) and ReadOnlyPayloads (default: a payload returned by Get may be
// changed later, so the region copies it).

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

// Discarder is implemented by backends that store nothing (the null
// backend): every Get is a miss. A region over such a backend runs every
// creator without locking, since there is nothing to protect, and the
// conformance suite skips the checks that need stored values.
type Discarder interface {
	// Discards reports true when the backend keeps nothing.
	Discards() bool
}

// ReadOnlyPayloads is implemented by backends that never modify, reuse or
// hand out for writing a payload slice after Get returned it: each payload
// is a fresh buffer, or one the backend keeps unchanged for as long as
// anything may refer to it. A region over such a backend hands a string
// value's bytes to its callers without copying them (a copy is most of a hit
// served from process memory). Undeclared, the region copies, so a backend
// that reuses its buffers stays correct.
//
// Unlike the other optional interfaces, Proxy does not pass this one on: a
// proxy's Get may return buffers of its own, and only its author can say
// what becomes of them.
type ReadOnlyPayloads interface {
	// ReadOnlyPayloads reports true when payloads returned by Get are never
	// modified afterwards.
	ReadOnlyPayloads() bool
}

// PayloadsReadOnly reports whether b declares ReadOnlyPayloads.
func PayloadsReadOnly(b Backend) bool {
	r, ok := b.(ReadOnlyPayloads)
	return ok && r.ReadOnlyPayloads()
}

// IsShared reports whether b's storage may be seen by other processes: true
// unless b declares ProcessLocal, or discards everything.
func IsShared(b Backend) bool {
	if p, ok := b.(ProcessLocal); ok && p.ProcessLocal() {
		return false
	}
	return !Discards(b)
}

// Discards reports whether b declares that it keeps nothing.
func Discards(b Backend) bool {
	d, ok := b.(Discarder)
	return ok && d.Discards()
}

// LockerOf returns the backend's own lock, or nil if it has none (it does not
// implement Locking, or its Locker is nil).
func LockerOf(b Backend) lock.Locker {
	if l, ok := b.(Locking); ok {
		return l.Locker()
	}
	return nil
}

// KeepsValues reports whether the region should hand b unencoded Go values.
func KeepsValues(b Backend) bool {
	v, ok := b.(ValueKeeper)
	return ok && v.KeepsValues()
}

// StorageTTL returns b's storage expiry, or zero if it has none.
func StorageTTL(b Backend) time.Duration {
	if e, ok := b.(StorageExpirer); ok {
		return max(e.StorageTTL(), 0)
	}
	return 0
}

// GetMulti reads keys through b's MultiGetter, or one Get at a time when b
// has none or declines (ErrUnsupported). The result has one element per key,
// in order; nil marks a miss. A MultiGetter that returns a result of another
// length is an error, never a short read. Errors other than ErrNotFound stop
// the fallback and are returned.
func GetMulti(ctx context.Context, b Backend, keys []string) ([]*Entry, error) {
	if m, ok := b.(MultiGetter); ok {
		out, err := m.GetMulti(ctx, keys)
		if err == nil && len(out) != len(keys) {
			return nil, fmt.Errorf("GetMulti of %d keys returned %d entries: %w", len(keys), len(out), ErrBadResult)
		}
		if !errors.Is(err, ErrUnsupported) {
			return out, err
		}
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

// SetMulti writes entries through b's MultiSetter, or one Set at a time when
// b has none or declines.
func SetMulti(ctx context.Context, b Backend, keys []string, entries []Entry) error {
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", ErrBadArgument, len(keys), len(entries))
	}
	if m, ok := b.(MultiSetter); ok {
		if err := m.SetMulti(ctx, keys, entries); !errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	for i, k := range keys {
		if err := b.Set(ctx, k, entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMulti deletes keys through b's MultiDeleter, or one Delete at a time
// when b has none or declines.
func DeleteMulti(ctx context.Context, b Backend, keys []string) error {
	if m, ok := b.(MultiDeleter); ok {
		if err := m.DeleteMulti(ctx, keys); !errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// EvictTag removes every entry of b carrying tag, or returns an error
// wrapping ErrUnsupported if b has no TagEvicter.
func EvictTag(ctx context.Context, b Backend, tag string) (int, error) {
	if t, ok := b.(TagEvicter); ok {
		return t.EvictTag(ctx, tag)
	}
	return 0, fmt.Errorf("EvictTag: %w", ErrUnsupported)
}

// List calls fn for every entry of b, or returns an error wrapping
// ErrUnsupported if b has no Lister.
func List(ctx context.Context, b Backend, fn func(EntryInfo) error) error {
	if l, ok := b.(Lister); ok {
		return l.List(ctx, fn)
	}
	return fmt.Errorf("List: %w", ErrUnsupported)
}

// StorageStatsOf reports b's storage statistics, or an error wrapping
// ErrUnsupported if b has no StatReporter.
func StorageStatsOf(ctx context.Context, b Backend) (Stats, error) {
	if r, ok := b.(StatReporter); ok {
		return r.StorageStats(ctx)
	}
	return Stats{}, fmt.Errorf("StorageStats: %w", ErrUnsupported)
}
