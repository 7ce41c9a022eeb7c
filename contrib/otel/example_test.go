package otel_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	rcotel "github.com/regioncache/regioncache/contrib/otel"
	"github.com/regioncache/regioncache/region"
)

func Example() {
	spans := tracetest.NewInMemoryExporter() // in a service: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	inst, err := rcotel.New(rcotel.WithTracerProvider(tp)) // metrics: the global MeterProvider
	if err != nil {
		panic(err)
	}
	r, err := region.Open("memory", backends.Args{}, region.WithName("users"), region.WithObserver(inst.Observe))
	if err != nil {
		panic(err)
	}
	defer r.Close()

	ctx, req := tp.Tracer("app").Start(context.Background(), "GET /users/1")
	region.GetOrCreate(ctx, r, "user:1", func(ctx context.Context) (string, error) { return "alice", nil })
	region.GetOrCreate(ctx, r, "user:1", func(ctx context.Context) (string, error) { return "alice", nil }) // a hit: no span
	req.End()

	for _, s := range spans.GetSpans().Snapshots() {
		parent := "none"
		if s.Parent().SpanID() == req.SpanContext().SpanID() {
			parent = "GET /users/1"
		}
		fmt.Printf("%s (parent: %s)\n", s.Name(), parent)
	}
	// Output:
	// regioncache.create (parent: GET /users/1)
	// GET /users/1 (parent: none)
}
