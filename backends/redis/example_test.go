package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/redis" // registers "redis"
	"github.com/regioncache/regioncache/region"
)

// A region on Redis is shared by every process, on every machine, that opens
// it with the same server and prefix; the Redis lock makes sure that one of
// them creates a missing value while the others wait for it.
func Example() {
	r, err := region.Open("redis", backends.Args{
		"url":                   "redis://127.0.0.1:6379/0",
		"prefix":                "myapp-users",
		"redis_expiration_time": "24h", // server-side TTL: Redis forgets old entries
		"lock_timeout":          "30s", // lease of the dogpile lock, renewed while creating
	}, region.WithExpiration(10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	name, err := region.GetOrCreate(context.Background(), r, "user:42", func(ctx context.Context) (string, error) {
		return "Ada", nil // the expensive load
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}
