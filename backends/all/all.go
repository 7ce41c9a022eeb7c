// Package all registers every in-tree backend. Import it for its side effect:
//
//	import _ "github.com/regioncache/regioncache/backends/all"
package all

import (
	_ "github.com/regioncache/regioncache/backends/filesystem" // "filesystem"
	_ "github.com/regioncache/regioncache/backends/memcached"  // "memcached"
	_ "github.com/regioncache/regioncache/backends/memory"     // "memory"
	_ "github.com/regioncache/regioncache/backends/null"       // "null"
	_ "github.com/regioncache/regioncache/backends/rawfs"      // "rawfs"
	_ "github.com/regioncache/regioncache/backends/redis"      // "redis"
)
