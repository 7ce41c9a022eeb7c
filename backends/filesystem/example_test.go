package filesystem_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/region"
)

// A filesystem region shared by every process that uses the same base_dir:
// with distributed_lock (the default) only one of them runs the creator for
// a missing key.
func Example() {
	dir, _ := os.MkdirTemp("", "example-cache")
	defer os.RemoveAll(dir)
	r, err := region.Open("filesystem", backends.Args{
		"base_dir":        dir,
		"cache_size":      "1GiB",
		"expiration_time": "24h", // delete entries older than a day
	}, region.WithExpiration(time.Hour)) // regenerate values older than an hour
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()
	for range 3 {
		v, err := region.GetOrCreate(ctx, r, "answer", func(ctx context.Context) (int, error) {
			fmt.Println("computing")
			return 42, nil
		})
		fmt.Println(v, err)
	}
	// Output:
	// computing
	// 42 <nil>
	// 42 <nil>
	// 42 <nil>
}
