package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/internal/redistest"
)

// topologyHarness opens the backend on the given connection arguments.
func topologyHarness(name string, conn backends.Args) conformance.Harness {
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		args := backends.Args{"prefix": prefixFor(dir), "lock_timeout": "5s", "socket_timeout": "30s"}
		for k, v := range conn {
			args[k] = v
		}
		if ttl > 0 {
			args["redis_expiration_time"] = ttl
		}
		return backends.Open("redis", args)
	}
	return conformance.Harness{
		Name: name,
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	}
}

// TestConformanceCluster runs the suite against a real Redis Cluster (three
// masters, three replicas) in both key layouts.
func TestConformanceCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	for _, layout := range []string{"slot", "spread"} {
		t.Run(layout, func(t *testing.T) {
			conformance.Run(t, topologyHarness("redis-cluster-"+layout, backends.Args{
				"addrs": strings.Join(c.Addrs(), ","), "cluster": true, "cluster_layout": layout,
			}), conformance.LargeValueSize(4<<20)) // 64 MiB values are TestConformance's (one server)
		})
	}
}

// TestConformanceSentinel runs the suite through Sentinel.
func TestConformanceSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	conformance.Run(t, topologyHarness("redis-sentinel", backends.Args{
		"addrs": strings.Join(s.Addrs(), ","), "master_name": redistest.SentinelMaster,
	}), conformance.LargeValueSize(4<<20))
}
