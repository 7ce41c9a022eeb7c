package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	rcredis "github.com/regioncache/regioncache/backends/redis"
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

// TestClusterLayouts: with "slot" every key of a region lands on one master;
// with "spread" the keys of one region reach every master, and multi
// operations and tag eviction still work across slots.
func TestClusterLayouts(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := context.Background()
	cc := c.Client()
	for _, layout := range []string{"slot", "spread"} {
		b, err := rcredis.Open(backends.Args{"addrs": strings.Join(c.Addrs(), ","), "cluster": true,
			"cluster_layout": layout, "prefix": "layout-" + layout})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		const n = 300
		keys := make([]string, n)
		entries := make([]backends.Entry, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("key-%d", i)
			entries[i] = backends.Entry{Payload: []byte(keys[i]), Tags: []string{"all"}}
		}
		if err := b.SetMulti(ctx, keys, entries); err != nil {
			t.Fatalf("%s: SetMulti: %v", layout, err)
		}
		got, err := b.GetMulti(ctx, keys)
		if err != nil {
			t.Fatalf("%s: GetMulti: %v", layout, err)
		}
		for i, e := range got {
			if e == nil || string(e.Payload) != keys[i] {
				t.Fatalf("%s: GetMulti[%d] = %v", layout, i, e)
			}
		}
		var perMaster []int64
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			var cursor uint64
			var count int64
			for {
				ks, next, err := m.Scan(ctx, cursor, "{layout-"+layout+"*", 1000).Result()
				if err != nil {
					return err
				}
				count += int64(len(ks))
				if next == 0 {
					break
				}
				cursor = next
			}
			mu.Lock()
			perMaster = append(perMaster, count)
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, k := range perMaster {
			if k > 0 {
				used++
			}
		}
		t.Logf("%s: keys per master %v", layout, perMaster)
		if layout == "slot" && used != 1 || layout == "spread" && used != len(perMaster) {
			t.Fatalf("%s: keys on %d of %d masters", layout, used, len(perMaster))
		}
		if removed, err := b.EvictTag(ctx, "all"); err != nil || removed != n {
			t.Fatalf("%s: EvictTag removed %d, %v; want %d", layout, removed, err, n)
		}
		if err := b.DeleteMulti(ctx, keys); err != nil {
			t.Fatalf("%s: DeleteMulti: %v", layout, err)
		}
	}
}

// TestConformanceSentinel runs the suite through Sentinel.
func TestConformanceSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	conformance.Run(t, topologyHarness("redis-sentinel", backends.Args{
		"addrs": strings.Join(s.Addrs(), ","), "master_name": redistest.SentinelMaster,
	}), conformance.LargeValueSize(4<<20))
}
