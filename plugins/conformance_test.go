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

// TestConformanceMemoryKeepsValues serves the memory backend in its default
// mode: it keeps values, which cannot cross the process boundary, so the
// plugin must not claim keeps-values.
func TestConformanceMemoryKeepsValues(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "memory-plugin-default",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("memory"), nil)
		},
	})
}

// TestConformanceBolt runs the suite against the example third-party plugin
// (examples/plugins/boltbackend): locks, tags, listing, shared storage and
// file streaming through the protocol.
func TestConformanceBolt(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "bolt-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("bolt"), backends.Args{"base_dir": dir, "inline_max": 4096})
		},
	})
}
