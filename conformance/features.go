package conformance

import (
	"context"
	"errors"
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// Features is the set of optional abilities the suite found in a backend: the
// optional interfaces of package backends it implements and does not decline
// at run time. It is what the report shows and what decides which checks are
// skipped; a backend declares nothing else.
type Features uint32

// The features the suite looks for.
const (
	FeatMulti            Features = 1 << iota // MultiGetter, MultiSetter, MultiDeleter
	FeatLock                                  // Locking with a non-nil Locker
	FeatStorageExpiry                         // StorageExpirer with a TTL above zero
	FeatTags                                  // TagEvicter
	FeatList                                  // Lister
	FeatStats                                 // StatReporter
	FeatFiles                                 // FileStore
	FeatShared                                // storage shared across processes (no ProcessLocal)
	FeatDiscards                              // Discarder: keeps nothing
	FeatKeepsValues                           // ValueKeeper reporting true
	FeatFenced                                // FencedSetter beside a lock
	FeatReadOnlyPayloads                      // ReadOnlyPayloads reporting true
)

var featNames = []string{"multi", "lock", "storage-expiry", "tags", "list", "stats", "files", "shared-storage", "discards", "keeps-values", "fenced-set", "read-only-payloads"}

// String lists the features by name, e.g. "lock|tags", or "none".
func (f Features) String() string {
	var parts []string
	for i, n := range featNames {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// probeKey is a key no check writes, used to ask optional interfaces whether
// they decline.
const probeKey = "regioncache-conformance-probe\x00"

// featuresOf finds b's features: each optional interface it implements, asked
// once with a harmless call so that an instance that declines at run time
// (backends.ErrUnsupported) is seen not to have it.
func featuresOf(ctx context.Context, b backends.Backend) Features {
	var f Features
	declines := func(err error) bool { return errors.Is(err, backends.ErrUnsupported) }
	mg, g := b.(backends.MultiGetter)
	_, s := b.(backends.MultiSetter)
	_, d := b.(backends.MultiDeleter)
	if g && s && d {
		if _, err := mg.GetMulti(ctx, []string{probeKey}); !declines(err) {
			f |= FeatMulti
		}
	}
	if backends.LockerOf(b) != nil {
		f |= FeatLock
	}
	if _, ok := b.(backends.FencedSetter); ok && f&FeatLock != 0 {
		f |= FeatFenced
	}
	if backends.StorageTTL(b) > 0 {
		f |= FeatStorageExpiry
	}
	if t, ok := b.(backends.TagEvicter); ok {
		if _, err := t.EvictTag(ctx, probeKey); !declines(err) {
			f |= FeatTags
		}
	}
	if l, ok := b.(backends.Lister); ok {
		stop := errors.New("stop")
		if err := l.List(ctx, func(backends.EntryInfo) error { return stop }); !declines(err) {
			f |= FeatList
		}
	}
	if r, ok := b.(backends.StatReporter); ok {
		if _, err := r.StorageStats(ctx); !declines(err) {
			f |= FeatStats
		}
	}
	if fs, ok := b.(backends.FileStore); ok {
		file, _, err := fs.OpenFile(ctx, probeKey)
		if file != nil {
			file.Close()
		}
		if !declines(err) {
			f |= FeatFiles
		}
	}
	if backends.IsShared(b) {
		f |= FeatShared
	}
	if backends.Discards(b) {
		f |= FeatDiscards
	}
	if backends.KeepsValues(b) {
		f |= FeatKeepsValues
	}
	if backends.PayloadsReadOnly(b) {
		f |= FeatReadOnlyPayloads
	}
	return f
}
