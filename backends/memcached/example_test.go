package memcached_test

import (
	"fmt"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memcached"
)

// Arguments are checked when the backend is opened; memcached itself is
// first contacted by the first call.
func Example_arguments() {
	_, err := backends.Open("memcached", backends.Args{"url": "mc1:11211,mc2:11211", "lock_timeout": "500ms"})
	fmt.Println(err)
	b, err := backends.Open("memcached", backends.Args{"url": []string{"mc1:11211", "mc2:11211"}, "memcached_expire_time": "1h"})
	fmt.Println(err)
	_ = b.Close()
	// Output:
	// open backend "memcached": regioncache: bad backend argument: lock_timeout: want whole seconds, at least 1s (memcached's resolution), got 500ms
	// <nil>
}
