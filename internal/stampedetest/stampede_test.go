package stampedetest_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	_ "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/internal/stampedetest"
)

func TestMain(m *testing.M) {
	stampedetest.Main(m, map[string]stampedetest.WorkerFunc{"echo": echo})
}

// echo returns its spec doubled, after the release.
func echo(spec func(any) error) (any, error) {
	var n int
	if err := spec(&n); err != nil {
		return nil, err
	}
	stampedetest.Ready()
	return 2 * n, nil
}

func TestRunAll(t *testing.T) {
	got := stampedetest.RunAll[int](t, 3, "echo", func(i int) any { return i + 1 })
	if len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 6 {
		t.Fatalf("results %v, want [2 4 6]", got)
	}
}

func TestSummaries(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got, want := stampedetest.Distribution(ds), "n=100 median 51ms p90 91ms p99 100ms max 100ms"; got != want {
		t.Fatalf("Distribution = %q, want %q", got, want)
	}
	if got := stampedetest.Distribution(nil); got != "none" {
		t.Fatalf("Distribution(nil) = %q", got)
	}
	if n := stampedetest.Within(ds, 10*time.Millisecond); n != 10 {
		t.Fatalf("Within 10ms = %d, want 10", n)
	}
	s := stampedetest.Served{Stale: 2, Fresh: 1, StaleLatencies: []time.Duration{time.Microsecond, 3 * time.Millisecond}}
	if got, want := s.String(), "2 callers served the stale value (1 within 1ms, slowest stale 3ms), 1 the new one; stale callers' latency n=2 median 3ms p90 3ms p99 3ms max 3ms"; got != want {
		t.Fatalf("Served = %q, want %q", got, want)
	}
}

func TestColdErr(t *testing.T) {
	one := stampedetest.Result{Created: 1, Creations: 1, Calls: []stampedetest.Call{{Value: "fresh-1"}, {Value: "fresh-1"}}}
	if err := (stampedetest.Outcome{one}).ColdErr(); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]stampedetest.Outcome{
		"two creators":      {one, one},
		"uncounted":         {{Created: 1, Calls: one.Calls}},
		"another value":     {one, {Calls: []stampedetest.Call{{Value: "fresh-2"}}}},
		"not a created one": {{Created: 1, Creations: 1, Calls: []stampedetest.Call{{Value: "stale"}}}},
	} {
		if o.ColdErr() == nil {
			t.Errorf("%s: ColdErr = nil", name)
		}
	}
}

func TestAllStaleErr(t *testing.T) {
	stale := func(n int) []stampedetest.Call {
		cs := make([]stampedetest.Call, n)
		for i := range cs {
			cs[i].Value = "old"
		}
		return cs
	}
	creator := stampedetest.Result{Created: 1, StaleServed: 2, Calls: append(stale(2), stampedetest.Call{Value: "fresh-1"})}
	if err := (stampedetest.Outcome{creator, {StaleServed: 3, Calls: stale(3)}}).AllStaleErr("old"); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]stampedetest.Outcome{
		"no creation":        {{StaleServed: 3, Calls: stale(3)}},
		"two fresh":          {creator, creator},
		"stale not counted":  {creator, {Calls: stale(3)}},
		"a value of neither": {creator, {StaleServed: 1, Calls: []stampedetest.Call{{Value: "old"}, {Value: "x"}}}},
	} {
		if o.AllStaleErr("old") == nil {
			t.Errorf("%s: AllStaleErr = nil", name)
		}
	}
}

// coldStampede runs the DESIGN §9 cold-key measurement: rounds of 8 × 32
// callers on one cold key with a 200 ms creator; exactly one creation per
// round, and the tail (the last caller's return after the creator's end;
// bar ≤ 20 ms) logged.
func coldStampede(t *testing.T, backend string, args func(round int) backends.Args) {
	const procs, goroutines, rounds = 8, 32, 3
	if testing.Short() {
		t.Skip("starts 24 processes")
	}
	stampedetest.Cold(t, procs, rounds, func(round int) stampedetest.Spec {
		return stampedetest.Spec{Backend: backend, Args: args(round), Key: "cold-" + strconv.Itoa(round),
			Goroutines: goroutines, Work: 200 * time.Millisecond}
	})
}

func TestColdStampedeFilesystem(t *testing.T) {
	coldStampede(t, "filesystem", func(int) backends.Args { return backends.Args{"base_dir": t.TempDir()} })
}

func TestColdStampedeRedis(t *testing.T) {
	srv := redistest.Start(t)
	coldStampede(t, "redis", func(round int) backends.Args {
		return backends.Args{"url": srv.URL(0), "prefix": "stampede" + strconv.Itoa(round)}
	})
}
