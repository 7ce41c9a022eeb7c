package rawfs_test

import (
	"context"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/conformance"
)

func harness(name string, extra backends.Args) conformance.Harness {
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		args := backends.Args{"base_dir": dir}
		for k, v := range extra {
			args[k] = v
		}
		if ttl > 0 {
			args["expiration_time"] = ttl
		}
		return rawfs.Open(args)
	}
	return conformance.Harness{
		Name: name,
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, harness("rawfs", nil))
}

func TestConformanceNoDistributedLock(t *testing.T) {
	conformance.Run(t, harness("rawfs(distributed_lock=false)", backends.Args{"distributed_lock": false}))
}

func TestConformanceWithCacheSize(t *testing.T) {
	// A bound large enough for every check's data: eviction runs but must
	// not break any contract.
	conformance.Run(t, harness("rawfs(cache_size)", backends.Args{"cache_size": "1GiB"}))
}

func TestConformanceMovable(t *testing.T) {
	conformance.Run(t, harness("rawfs(file_movable)", backends.Args{"file_movable": true}))
}
