package plugins_test

import (
	"context"
	"fmt"
	"log"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/plugins"
)

// A plugin executable's whole main: serve a backend factory. Build it as
// regioncache-backend-<name> and install it with
// "regioncache plugin install".
func ExampleServe() {
	plugins.Serve(func(args backends.Args) (backends.Backend, error) {
		return memory.Open(args)
	})
}

// A host opens a plugin by path (or, through backends.Open and region.Open,
// by name once it is installed or on REGIONCACHE_PLUGIN_PATH).
func ExampleOpen() {
	b, err := plugins.Open("./regioncache-backend-bolt", backends.Args{"base_dir": "/var/cache/myapp"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Set(ctx, "greeting", backends.Entry{Payload: []byte("hello")}); err != nil {
		log.Fatal(err)
	}
	e, err := b.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (plugin declares: %s)\n", e.Payload, b.Declares())
}
