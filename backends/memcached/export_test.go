package memcached

import "github.com/regioncache/regioncache/lock"

// TokenForTest returns a memcached lock handle's token (tests only).
func TokenForTest(h lock.Handle) string { return h.(*LockHandle).token }
