package prometheus_test

import (
	"context"
	"fmt"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	rcprom "github.com/regioncache/regioncache/contrib/prometheus"
	"github.com/regioncache/regioncache/region"
)

func Example() {
	m := rcprom.New()
	reg := prom.NewRegistry() // or prometheus.DefaultRegisterer, served by promhttp.Handler()
	reg.MustRegister(m)

	r, err := region.Open("memory", backends.Args{}, region.WithName("users"), region.WithObserver(m.Observe))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	load := func(ctx context.Context) (string, error) { return "alice", nil }
	region.GetOrCreate(context.Background(), r, "user:1", load) // miss: created
	region.GetOrCreate(context.Background(), r, "user:1", load) // hit

	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetType() == 0 /* counter */ {
			for _, s := range f.GetMetric() {
				fmt.Printf("%s{region=%q} %v\n", f.GetName(), s.GetLabel()[0].GetValue(), s.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// regioncache_calls_total{region="users"} 2
	// regioncache_creations_total{region="users"} 1
	// regioncache_errors_total{region="users"} 0
	// regioncache_hits_total{region="users"} 1
	// regioncache_lock_waits_total{region="users"} 0
	// regioncache_misses_total{region="users"} 1
	// regioncache_stale_served_total{region="users"} 0
	// regioncache_write_errors_total{region="users"} 0
}
