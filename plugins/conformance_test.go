package plugins

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
)

// TestConformanceMemory runs the whole conformance suite against the memory
// backend served as a plugin: a real process per opened backend.
func TestConformanceMemory(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "memory-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("memory"), backends.Args{"copy_values": true})
		},
	})
}
