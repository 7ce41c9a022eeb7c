// Package prometheus exports regioncache regions' counters and latency
// histograms to Prometheus.
//
// It is a module of its own (github.com/regioncache/regioncache/contrib/prometheus)
// so that the core module never depends on the Prometheus client.
//
// A Metrics is a prometheus.Collector fed by region events: register it, and
// give its Observe method to each region with region.WithObserver. The
// region's name (region.WithName, or the backend's name) is the "region"
// label:
//
//	m := prometheus.New()
//	promclient.MustRegister(m)
//	users, err := region.Open("redis", args,
//		region.WithName("users"), region.WithObserver(m.Observe))
//
// Exported, per region (with the default namespace "regioncache"):
//
//	regioncache_calls_total            calls (keys, for multi calls): hits + misses + stale served
//	regioncache_hits_total             calls served a fresh value
//	regioncache_misses_total           calls that found nothing usable (they waited or created)
//	regioncache_stale_served_total     calls served a stale value while another caller regenerated
//	regioncache_creations_total        creator runs that succeeded
//	regioncache_lock_waits_total       waits for another caller's creation or lock
//	regioncache_errors_total           creator and backend failures
//	regioncache_write_errors_total     created values that could not be stored
//	regioncache_creation_seconds       histogram of creator run time (successful and failed runs)
//	regioncache_lock_wait_seconds      histogram of lock waits
//
// The counters agree with region.Stats, which counts the same events. To
// send events to more than one observer (Prometheus and OpenTelemetry, say),
// give WithObserver a function that calls each.
package prometheus
