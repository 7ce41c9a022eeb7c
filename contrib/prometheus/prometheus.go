package prometheus

import (
	"sync"
	"sync/atomic"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/regioncache/regioncache/region"
)

// DefaultBuckets are the histogram buckets, in seconds, unless Buckets is
// given: from 100 µs (a lock wait on a local cache) to 30 s (a slow
// creator).
var DefaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Option configures New.
type Option func(*options)

type options struct {
	namespace   string
	buckets     []float64
	constLabels prom.Labels
}

// Namespace sets the metric name prefix (default "regioncache").
func Namespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// Buckets sets the histogram buckets, in seconds.
func Buckets(b ...float64) Option { return func(o *options) { o.buckets = b } }

// ConstLabels adds labels with fixed values to every metric (for example
// the service name).
func ConstLabels(l prom.Labels) Option { return func(o *options) { o.constLabels = l } }

// Metrics collects region events as Prometheus metrics. It implements
// prometheus.Collector. Its methods are safe for concurrent use; one Metrics
// serves any number of regions.
type Metrics struct {
	calls, hits, misses, stale, creations, waits, errs, writeErrs *prom.CounterVec
	creation, wait                                                *prom.HistogramVec

	regions sync.Map                      // region name -> *regionMetrics
	last    atomic.Pointer[regionMetrics] // the region of the last event: most programs have one or a few
}

// regionMetrics are one region's children, looked up once per region
// rather than once per event.
type regionMetrics struct {
	name                                                          string
	calls, hits, misses, stale, creations, waits, errs, writeErrs prom.Counter
	creation, wait                                                prom.Observer
}

// New returns the metrics, to be registered with a prometheus.Registerer.
func New(opts ...Option) *Metrics {
	o := options{namespace: "regioncache", buckets: DefaultBuckets}
	for _, f := range opts {
		f(&o)
	}
	label := []string{"region"}
	counter := func(name, help string) *prom.CounterVec {
		return prom.NewCounterVec(prom.CounterOpts{Namespace: o.namespace, Name: name, Help: help, ConstLabels: o.constLabels}, label)
	}
	hist := func(name, help string) *prom.HistogramVec {
		return prom.NewHistogramVec(prom.HistogramOpts{Namespace: o.namespace, Name: name, Help: help, Buckets: o.buckets, ConstLabels: o.constLabels}, label)
	}
	return &Metrics{
		calls:     counter("calls_total", "Calls (keys, for multi calls): hits, misses and stale values served."),
		hits:      counter("hits_total", "Calls served a fresh value from the cache."),
		misses:    counter("misses_total", "Calls that found nothing usable (they waited or created)."),
		stale:     counter("stale_served_total", "Calls served a stale value while another caller regenerated it."),
		creations: counter("creations_total", "Creator runs that succeeded."),
		waits:     counter("lock_waits_total", "Waits for another caller's creation or lock."),
		errs:      counter("errors_total", "Creator and backend failures."),
		writeErrs: counter("write_errors_total", "Created values that could not be stored (the calls succeeded)."),
		creation:  hist("creation_seconds", "Creator run time, successful and failed runs."),
		wait:      hist("lock_wait_seconds", "Time callers waited for another caller's creation or lock."),
	}
}

func (m *Metrics) vecs() []prom.Collector {
	return []prom.Collector{m.calls, m.hits, m.misses, m.stale, m.creations, m.waits, m.errs, m.writeErrs, m.creation, m.wait}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prom.Desc) {
	for _, c := range m.vecs() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prom.Metric) {
	for _, c := range m.vecs() {
		c.Collect(ch)
	}
}

func (m *Metrics) region(name string) *regionMetrics {
	if r := m.last.Load(); r != nil && r.name == name {
		return r
	}
	if r, ok := m.regions.Load(name); ok {
		m.last.Store(r.(*regionMetrics))
		return r.(*regionMetrics)
	}
	r := &regionMetrics{
		name:  name,
		calls: m.calls.WithLabelValues(name), hits: m.hits.WithLabelValues(name),
		misses: m.misses.WithLabelValues(name), stale: m.stale.WithLabelValues(name),
		creations: m.creations.WithLabelValues(name), waits: m.waits.WithLabelValues(name),
		errs: m.errs.WithLabelValues(name), writeErrs: m.writeErrs.WithLabelValues(name),
		creation: m.creation.WithLabelValues(name), wait: m.wait.WithLabelValues(name),
	}
	got, _ := m.regions.LoadOrStore(name, r)
	m.last.Store(got.(*regionMetrics))
	return got.(*regionMetrics)
}

// Observe records one event. Give it to regions with region.WithObserver.
// Event kinds it does not know are ignored.
func (m *Metrics) Observe(e region.Event) {
	r := m.region(e.Region)
	switch e.Kind {
	case region.EventHit:
		r.calls.Inc()
		r.hits.Inc()
	case region.EventMiss:
		r.calls.Inc()
		r.misses.Inc()
	case region.EventStaleServed:
		r.calls.Inc()
		r.stale.Inc()
	case region.EventCreated:
		r.creations.Inc()
		r.creation.Observe(e.Duration.Seconds())
	case region.EventLockWait:
		r.waits.Inc()
		r.wait.Observe(e.Duration.Seconds())
	case region.EventError:
		r.errs.Inc()
		if e.Duration > 0 { // a creator's failure carries its run time
			r.creation.Observe(e.Duration.Seconds())
		}
	case region.EventWriteError:
		r.writeErrs.Inc()
	}
}
