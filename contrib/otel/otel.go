// Package otel reports regioncache regions to OpenTelemetry: metrics for
// every region event and a span for each creation, a child of the caller's
// span.
//
// It is a module of its own (github.com/regioncache/regioncache/contrib/otel)
// so that the core module never depends on OpenTelemetry.
//
// Give an Instrumentation's Observe method to each region with
// region.WithObserver:
//
//	inst, err := otel.New() // the global MeterProvider and TracerProvider
//	users, err := region.Open("redis", args,
//		region.WithName("users"), region.WithObserver(inst.Observe))
//
// Metrics, each with the attribute regioncache.region:
//
//	regioncache.calls, regioncache.hits, regioncache.misses,
//	regioncache.stale_served, regioncache.creations, regioncache.lock_waits,
//	regioncache.errors, regioncache.write_errors     counters
//	regioncache.creation.duration (s)                 histogram of creator run time
//	regioncache.lock_wait.duration (s)                histogram of lock waits
//
// Spans: one "regioncache.create" span per creator run, whose parent is the
// span in the context of the call that ran the creator (for a background
// regeneration, the caller that started it), spanning the creator's run
// time, with status Error when the creator failed. The region reports a
// creation when it ends (region.Event carries its duration), so the span is
// recorded with explicit start and end times; spans the creator itself
// starts are children of the caller's span, not of this one.
package otel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/regioncache/regioncache/region"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/regioncache/regioncache/contrib/otel"

// Attribute keys.
const (
	RegionKey = attribute.Key("regioncache.region")
	KeyKey    = attribute.Key("regioncache.key")
)

// Option configures New.
type Option func(*options)

type options struct {
	mp       metric.MeterProvider
	tp       trace.TracerProvider
	withKeys bool
}

// WithMeterProvider sets the meter provider (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.mp = mp } }

// WithTracerProvider sets the tracer provider (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tp = tp } }

// WithKeys records the cache key as the span attribute regioncache.key.
// Off by default: keys may be personal data, and they are never metric
// attributes (unbounded cardinality).
func WithKeys() Option { return func(o *options) { o.withKeys = true } }

// Instrumentation turns region events into OpenTelemetry metrics and spans.
// It is safe for concurrent use and serves any number of regions.
type Instrumentation struct {
	tracer   trace.Tracer
	withKeys bool

	calls, hits, misses, stale, creations, waits, errs, writeErrs metric.Int64Counter
	creation, wait                                                metric.Float64Histogram
}

// New creates the instruments.
func New(opts ...Option) (*Instrumentation, error) {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.mp == nil {
		o.mp = otel.GetMeterProvider()
	}
	if o.tp == nil {
		o.tp = otel.GetTracerProvider()
	}
	m := o.mp.Meter(ScopeName)
	in := &Instrumentation{tracer: o.tp.Tracer(ScopeName), withKeys: o.withKeys}
	var err error
	counter := func(dst *metric.Int64Counter, name, desc string) {
		if err == nil {
			*dst, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{call}"))
		}
	}
	counter(&in.calls, "regioncache.calls", "Calls (keys, for multi calls): hits, misses and stale values served.")
	counter(&in.hits, "regioncache.hits", "Calls served a fresh value from the cache.")
	counter(&in.misses, "regioncache.misses", "Calls that found nothing usable (they waited or created).")
	counter(&in.stale, "regioncache.stale_served", "Calls served a stale value while another caller regenerated it.")
	counter(&in.creations, "regioncache.creations", "Creator runs that succeeded.")
	counter(&in.waits, "regioncache.lock_waits", "Waits for another caller's creation or lock.")
	counter(&in.errs, "regioncache.errors", "Creator and backend failures.")
	counter(&in.writeErrs, "regioncache.write_errors", "Created values that could not be stored (the calls succeeded).")
	if err != nil {
		return nil, err
	}
	if in.creation, err = m.Float64Histogram("regioncache.creation.duration", metric.WithUnit("s"),
		metric.WithDescription("Creator run time, successful and failed runs.")); err != nil {
		return nil, err
	}
	if in.wait, err = m.Float64Histogram("regioncache.lock_wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time callers waited for another caller's creation or lock.")); err != nil {
		return nil, err
	}
	return in, nil
}

// Observe records one event. Give it to regions with region.WithObserver.
// Event kinds it does not know are ignored.
func (in *Instrumentation) Observe(e region.Event) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	attrs := metric.WithAttributes(RegionKey.String(e.Region))
	switch e.Kind {
	case region.EventHit:
		in.calls.Add(ctx, 1, attrs)
		in.hits.Add(ctx, 1, attrs)
	case region.EventMiss:
		in.calls.Add(ctx, 1, attrs)
		in.misses.Add(ctx, 1, attrs)
	case region.EventStaleServed:
		in.calls.Add(ctx, 1, attrs)
		in.stale.Add(ctx, 1, attrs)
	case region.EventCreated:
		in.creations.Add(ctx, 1, attrs)
		in.creation.Record(ctx, e.Duration.Seconds(), attrs)
		in.span(ctx, e)
	case region.EventLockWait:
		in.waits.Add(ctx, 1, attrs)
		in.wait.Record(ctx, e.Duration.Seconds(), attrs)
	case region.EventError:
		in.errs.Add(ctx, 1, attrs)
		if e.Duration > 0 { // a creator's failure carries its run time
			in.creation.Record(ctx, e.Duration.Seconds(), attrs)
			in.span(ctx, e)
		}
	case region.EventWriteError:
		in.writeErrs.Add(ctx, 1, attrs)
	}
}

// span records the creation that just ended as a child of ctx's span.
func (in *Instrumentation) span(ctx context.Context, e region.Event) {
	end := time.Now()
	attrs := []attribute.KeyValue{RegionKey.String(e.Region)}
	if in.withKeys {
		attrs = append(attrs, KeyKey.String(e.Key))
	}
	_, sp := in.tracer.Start(ctx, "regioncache.create",
		trace.WithTimestamp(end.Add(-e.Duration)),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrs...))
	if e.Err != nil {
		sp.RecordError(e.Err)
		sp.SetStatus(codes.Error, e.Err.Error())
	}
	sp.End(trace.WithTimestamp(end))
}
