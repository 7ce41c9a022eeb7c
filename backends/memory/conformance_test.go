package memory_test

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/conformance"
)

func harness(name string, args backends.Args) conformance.Harness {
	return conformance.Harness{
		Name: name,
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return memory.Open(args) },
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, harness("memory", nil))
}

func TestConformanceCopyValues(t *testing.T) {
	conformance.Run(t, harness("memory(copy_values)", backends.Args{"copy_values": true}))
}

func TestConformanceMaxEntries(t *testing.T) {
	// A bound large enough for every check's data: eviction runs but must
	// not break any contract.
	conformance.Run(t, harness("memory(max_entries)", backends.Args{"max_entries": 100000}))
}

func TestConformanceMaxSize(t *testing.T) {
	// A byte bound large enough for every check's data.
	conformance.Run(t, harness("memory(max_size)", backends.Args{"max_size": "256MiB"}))
}
