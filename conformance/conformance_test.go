package conformance_test

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/backends/null"
	"github.com/regioncache/regioncache/conformance"
)

func TestMemory(t *testing.T) {
	conformance.Run(t, conformance.Harness{Name: "memory", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return memory.New(), nil
	}})
}

func TestMemoryCopyValues(t *testing.T) {
	conformance.Run(t, conformance.Harness{Name: "memory(copy_values)", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return backends.Open("memory", backends.Args{"copy_values": true})
	}})
}

func TestNull(t *testing.T) {
	conformance.Run(t, conformance.Harness{Name: "null", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return null.New(), nil
	}})
}
