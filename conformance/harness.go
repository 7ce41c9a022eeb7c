package conformance

import (
	"context"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// Harness tells the suite how to open the backend under test.
//
// Only Name and Open are required. Everything else the suite needs to know
// about the backend it learns from the backend itself: its Features, the
// optional interfaces of package backends it implements and does not
// decline at run time.
type Harness struct {
	// Name labels the results (for example "memory" or a plugin's name).
	Name string

	// Open opens an instance of the backend on the storage identified by
	// dir: a fresh, empty, private directory the suite creates for each check.
	// Backends that do not keep files use dir only as a namespace (a Redis
	// key prefix, say). Opening twice with the same dir must give instances
	// that see each other's entries when the backend declares
	// FeatShared (storage not declared process-local).
	Open func(ctx context.Context, dir string) (backends.Backend, error)

	// OpenWithTTL, if set, opens an instance like Open whose storage expiry
	// is ttl. It enables the storage-expiry check.
	OpenWithTTL func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error)

	// CreatedPrecision is how precisely the backend keeps Entry.Created.
	// Zero means to the nanosecond. A backend that stores, say, Unix
	// milliseconds sets time.Millisecond; the metadata checks then accept a
	// Created that differs from the one written by less than this.
	CreatedPrecision time.Duration

	// LockEndsWithContext declares that the backend's lock (Locking) is
	// released when the context passed to Lock or TryLock ends, even if the
	// holder never calls Unlock (a lock tied to a connection or lease, say).
	// It enables the "lock/owner-context" check.
	LockEndsWithContext bool
}
