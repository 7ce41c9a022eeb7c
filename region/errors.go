package region

import (
	"errors"

	"github.com/regioncache/regioncache/backends"
)

var (
	// ErrNotFound is returned by Get (and Loader.Get) when the key has no
	// fresh value: absent, expired, invalidated, too old a version, or not
	// decodable. It is the same error as backends.ErrNotFound.
	ErrNotFound = backends.ErrNotFound

	// ErrNotConfigured is returned by every operation on a region that has
	// not been configured.
	ErrNotConfigured = errors.New("regioncache: region not configured")

	// ErrAlreadyConfigured is returned by Configure on a configured region.
	ErrAlreadyConfigured = errors.New("regioncache: region already configured")

	// ErrUnknownBackend is returned by Configure and Open for a backend name
	// nothing is registered under. It is the same error as
	// backends.ErrUnknownBackend; the message lists the known names.
	ErrUnknownBackend = backends.ErrUnknownBackend

	// ErrClosed is returned by every call on a region once its Close began.
	ErrClosed = errors.New("regioncache: region closed")

	// ErrTypeMismatch is wrapped by the error Get and GetEntry return when
	// the cached value is of another Go type than the caller asked for
	// (backends that keep Go values can tell; encoded values that do not
	// decode are misses). GetOrCreate replaces such a value and logs it.
	ErrTypeMismatch = errors.New("regioncache: cached value is of another type")

	// ErrBadOption is wrapped by errors about invalid options.
	ErrBadOption = errors.New("regioncache: bad option")
)
