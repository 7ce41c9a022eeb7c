package plugins

import (
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// declared is the set of optional interfaces a served backend has, as it
// travels in OpenResponse.capabilities. The host-side Backend implements every
// optional interface and declines at run time (backends.ErrUnsupported, a nil
// Locker) those the plugin's backend lacks. The bit values are part of the
// protocol.
type declared uint32

const (
	declMulti        declared = 1 << 0 // MultiGetter, MultiSetter, MultiDeleter
	declLock         declared = 1 << 1 // Locking with a non-nil Locker
	declTags         declared = 1 << 3 // TagEvicter
	declList         declared = 1 << 4 // Lister
	declFiles        declared = 1 << 5 // FileStore
	declDiscards     declared = 1 << 7 // Discarder reporting true
	declStats        declared = 1 << 9 // StatReporter
	declProcessLocal declared = 1 << 10
)

var declNames = []struct {
	d    declared
	name string
}{
	{declMulti, "multi"}, {declLock, "lock"}, {declTags, "tags"}, {declList, "list"},
	{declStats, "stats"}, {declFiles, "files"}, {declDiscards, "discards"}, {declProcessLocal, "process-local"},
}

// declarationsOf reads b's declarations: its optional interfaces and their
// run-time answers. Keeping Go values cannot cross a process boundary and
// is never declared.
func declarationsOf(b backends.Backend) declared {
	var d declared
	_, g := b.(backends.MultiGetter)
	_, s := b.(backends.MultiSetter)
	_, x := b.(backends.MultiDeleter)
	if g && s && x {
		d |= declMulti
	}
	if backends.LockerOf(b) != nil {
		d |= declLock
	}
	if _, ok := b.(backends.TagEvicter); ok {
		d |= declTags
	}
	if _, ok := b.(backends.Lister); ok {
		d |= declList
	}
	if _, ok := b.(backends.StatReporter); ok {
		d |= declStats
	}
	if _, ok := b.(backends.FileStore); ok {
		d |= declFiles
	}
	if backends.Discards(b) {
		d |= declDiscards
	}
	if !backends.IsShared(b) && !backends.Discards(b) {
		d |= declProcessLocal
	}
	return d
}

func (d declared) has(x declared) bool { return d&x == x }

// names lists the declarations by name, e.g. "multi|lock|tags", or "none".
func (d declared) String() string {
	var parts []string
	for _, n := range declNames {
		if d.has(n.d) {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}
