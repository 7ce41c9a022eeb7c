package conformance_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/backends/null"
	"github.com/regioncache/regioncache/conformance"
)

// A backend author's whole conformance test: these lines in a _test.go file
// run every check as a subtest (go test -run TestConformance -v lists them).
func ExampleRun() {
	testConformance := func(t *testing.T) {
		conformance.Run(t, conformance.Harness{Name: "memory", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return memory.Open(backends.Args{"copy_values": true})
		}})
	}
	_ = testConformance // func TestConformance(t *testing.T) { ... } in real code
}

// Check runs the same checks without a *testing.T and returns a report, as
// the regioncache conformance command does for plugin executables.
func ExampleCheck() {
	h := conformance.Harness{Name: "null", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return null.New(), nil
	}}
	rep := conformance.Check(context.Background(), h, conformance.Only("roundtrip/binary", "miss", "lock/exclusive"))
	for _, r := range rep.Results {
		fmt.Println(strings.TrimSpace(fmt.Sprint(r.Name, " ", r.Status, " ", r.Reason)))
	}
	fmt.Println("failed:", rep.Failed())
	// Output:
	// open PASS
	// roundtrip/binary PASS
	// miss PASS
	// lock/exclusive SKIP backend lacks capability lock
	// failed: false
}

// WriteTable prints a report for people; the CLI uses it.
func ExampleReport_WriteTable() {
	rep := conformance.Check(context.Background(), conformance.Harness{Name: "memory", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return memory.New(), nil
	}}, conformance.LargeValueSize(1<<20))
	if err := rep.WriteTable(os.Stdout); err != nil {
		fmt.Println(err)
	}
}

// Stress repeats the race-hunting checks for as long as asked; here the null
// backend, whose reads must all be misses however long the writers run.
func ExampleStress() {
	h := conformance.Harness{Name: "null", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return null.New(), nil
	}}
	rep := conformance.Check(context.Background(), h, conformance.Only("concurrent"), conformance.Stress(100*time.Millisecond))
	for _, r := range rep.Results {
		fmt.Println(r.Name, r.Status, r.Duration >= 100*time.Millisecond || r.Name == "open")
	}
	// Output:
	// open PASS true
	// concurrent PASS true
	// concurrent/own-keys PASS true
}
