package otel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	rcotel "github.com/regioncache/regioncache/contrib/otel"
	"github.com/regioncache/regioncache/region"
)

type setup struct {
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	inst   *rcotel.Instrumentation
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	s := &setup{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	var err error
	s.inst, err = rcotel.New(rcotel.WithTracerProvider(s.tp), rcotel.WithMeterProvider(mp), rcotel.WithKeys())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sums reads every counter's value for region name, by instrument name.
func (s *setup) sums(t *testing.T, name string) (map[string]int64, map[string]uint64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := s.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums, counts := map[string]int64{}, map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value(rcotel.RegionKey); v.AsString() == name {
						sums[m.Name] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if v, _ := p.Attributes.Value(rcotel.RegionKey); v.AsString() == name {
						counts[m.Name] += p.Count
					}
				}
			}
		}
	}
	return sums, counts
}

// A 50-caller stampede, each caller in its own span of one trace: one
// creation span, a child of the span of the caller that ran the creator,
// lasting the creator's time; the metrics count 50 calls, 1 creation and 49
// lock waits.
func TestStampedeSpanAndMetrics(t *testing.T) {
	s := newSetup(t)
	r, err := region.Open("memory", backends.Args{}, region.WithName("users"), region.WithObserver(s.inst.Observe))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tracer := s.tp.Tracer("test")
	rootCtx, root := tracer.Start(context.Background(), "request")
	const callers = 50
	const work = 100 * time.Millisecond
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	ready.Add(callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, sp := tracer.Start(rootCtx, "caller")
			defer sp.End()
			ready.Done()
			<-start
			if _, err := region.GetOrCreate(ctx, r, "report", func(ctx context.Context) (string, error) {
				time.Sleep(work)
				return "v", nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	root.End()

	callerSpans := map[[8]byte]bool{}
	var creates []sdktrace.ReadOnlySpan
	for _, sp := range s.spans.GetSpans().Snapshots() {
		switch sp.Name() {
		case "caller":
			callerSpans[sp.SpanContext().SpanID()] = true
		case "regioncache.create":
			creates = append(creates, sp)
		}
	}
	if len(creates) != 1 {
		t.Fatalf("%d creation spans, want 1", len(creates))
	}
	c := creates[0]
	if c.Parent().TraceID() != root.SpanContext().TraceID() || !callerSpans[c.Parent().SpanID()] {
		t.Fatalf("creation span's parent %v is not one of the callers' spans of trace %v", c.Parent(), root.SpanContext().TraceID())
	}
	if d := c.EndTime().Sub(c.StartTime()); d < work || d > 10*work {
		t.Errorf("creation span lasts %v, want about %v", d, work)
	}
	wantAttrs := map[attribute.Key]string{rcotel.RegionKey: "users", rcotel.KeyKey: "report"}
	for _, a := range c.Attributes() {
		delete(wantAttrs, a.Key)
	}
	if len(wantAttrs) > 0 {
		t.Errorf("creation span lacks attributes %v: %v", wantAttrs, c.Attributes())
	}

	sums, counts := s.sums(t, "users")
	for name, want := range map[string]int64{"regioncache.calls": callers, "regioncache.creations": 1, "regioncache.lock_waits": callers - 1, "regioncache.misses": callers} {
		if sums[name] != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, sums[name], want, sums)
		}
	}
	if counts["regioncache.creation.duration"] != 1 || counts["regioncache.lock_wait.duration"] != callers-1 {
		t.Errorf("histogram counts %v", counts)
	}
}

// A failing creator's span has status Error and the error recorded.
func TestFailedCreationSpan(t *testing.T) {
	s := newSetup(t)
	r, err := region.Open("memory", backends.Args{}, region.WithName("r"), region.WithObserver(s.inst.Observe))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	boom := errors.New("boom")
	if _, err := region.GetOrCreate(context.Background(), r, "k", func(ctx context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	spans := s.spans.GetSpans().Snapshots()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error || len(spans[0].Events()) == 0 {
		t.Fatalf("spans: %+v", spans)
	}
	if spans[0].Parent().IsValid() {
		t.Errorf("a call without a span got a parent: %v", spans[0].Parent())
	}
	sums, _ := s.sums(t, "r")
	if sums["regioncache.errors"] != 1 {
		t.Errorf("errors = %d", sums["regioncache.errors"])
	}
}
