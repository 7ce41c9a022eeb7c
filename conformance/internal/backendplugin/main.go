// Command backendplugin serves, as a regioncache plugin, the in-tree backend
// named by its own executable name: copied to regioncache-backend-null it
// serves the null backend, to regioncache-backend-filesystem the filesystem
// backend, and so on. The conformance command's tests use it to run the
// suite on in-tree backends through the plugin boundary, by name.
package main

import (
	"fmt"
	"os"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/all"
	"github.com/regioncache/regioncache/plugins"
)

func main() {
	name := plugins.NameOf(os.Args[0])
	f, ok := backends.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "backendplugin: no in-tree backend %q\n", name)
		os.Exit(2)
	}
	plugins.Serve(f)
}
