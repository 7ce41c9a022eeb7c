// Command regioncache-backend-bolt is an example third-party regioncache
// backend plugin: a cache on an embedded bbolt database that keeps small
// values in the database and large ones in files, served over the plugin
// protocol by plugins.Serve. It imports only public packages of
// github.com/regioncache/regioncache, as a plugin in another repository
// would. See examples/plugins/README.md.
//
// Build, install and check it:
//
//	go build -o regioncache-backend-bolt ./examples/plugins/boltbackend
//	regioncache conformance ./regioncache-backend-bolt --arg base_dir={dir}
//	regioncache plugin install ./regioncache-backend-bolt
//
// after which region.Open("bolt", backends.Args{"base_dir": "/var/cache/x"})
// uses it.
package main

import "github.com/regioncache/regioncache/plugins"

func main() { plugins.Serve(Open) }
