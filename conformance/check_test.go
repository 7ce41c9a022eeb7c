package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/backends/null"
	"github.com/regioncache/regioncache/conformance"
)

func nullHarness() conformance.Harness {
	return conformance.Harness{Name: "null", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return null.New(), nil
	}}
}

// TestNullPassesExactlyWhatApplies: the null backend declares discards and
// nothing else, so it must pass every check that applies to a store that
// keeps nothing (reads are held to be misses) and skip exactly the rest.
func TestNullPassesExactlyWhatApplies(t *testing.T) {
	rep := conformance.Check(t.Context(), nullHarness(), conformance.LargeValueSize(1<<20))
	if rep.Capabilities != conformance.FeatDiscards {
		t.Fatalf("null declares %s, want discards", rep.Capabilities)
	}
	wantSkip := []string{
		"roundtrip/no-alias", "roundtrip/read-only", "multi/native", "shared-storage",
		"lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel", "lock/owner-context",
		"lock/keys", "lock/after-failure", "lock/fenced",
		"expiry", "tags", "list", "stats", "files/copy", "files/move", "files/read-only", "files/temp",
	}
	var gotSkip []string
	for _, r := range rep.Results {
		switch r.Status {
		case conformance.Fail:
			t.Errorf("%s failed: %s", r.Name, r.Reason)
		case conformance.Skip:
			gotSkip = append(gotSkip, r.Name)
			if r.Reason == "" {
				t.Errorf("%s skipped without a reason", r.Name)
			}
		}
	}
	if !slices.Equal(gotSkip, wantSkip) {
		t.Errorf("skipped %q\nwant    %q", gotSkip, wantSkip)
	}
	if r, _ := rep.Lookup("lock/exclusive"); r.Reason != "backend lacks capability lock" {
		t.Errorf("lock/exclusive skip reason %q", r.Reason)
	}
	if len(rep.Results) != len(conformance.CheckNames())+1 {
		t.Errorf("%d results for %d checks and open", len(rep.Results), len(conformance.CheckNames()))
	}
}

// keeper is a memory backend that claims to keep nothing: the suite must
// notice that its reads hit.
type keeper struct{ *memory.Backend }

func (keeper) Discards() bool { return true }

func TestFalseDiscardsClaimIsCaught(t *testing.T) {
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "liar", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return keeper{memory.New()}, nil
	}}, conformance.Only("roundtrip/empty", "concurrent"))
	for _, n := range []string{"roundtrip/empty", "concurrent"} {
		if r, _ := rep.Lookup(n); r.Status != conformance.Fail {
			t.Errorf("%s: %s, want FAIL for a backend that declares discards but keeps entries", n, r.Status)
		}
	}
}

// hanging blocks in Get until released, ignoring its context.
type hanging struct {
	*memory.Backend
	release chan struct{}
}

func (h hanging) Get(ctx context.Context, key string) (backends.Entry, error) {
	<-h.release
	return h.Backend.Get(ctx, key)
}

func TestHangingCheckTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := conformance.Harness{Name: "hanging", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return hanging{memory.New(), release}, nil
	}}
	rep := conformance.Check(t.Context(), h, conformance.Only("miss", "delete/absent"),
		conformance.CheckTimeout(100*time.Millisecond), conformance.Patience(100*time.Millisecond))
	r, _ := rep.Lookup("miss")
	if r.Status != conformance.Fail || !strings.Contains(r.Reason, "timed out") || !strings.Contains(r.Reason, "abandoned") {
		t.Errorf("miss: %s %q, want a timeout failure naming the abandoned check", r.Status, r.Reason)
	}
	// The suite went on to the next check.
	if len(rep.Results) != 3 {
		t.Fatalf("got %d results, want open, miss and delete/absent", len(rep.Results))
	}
}

type panicky struct{ *memory.Backend }

func (panicky) Delete(ctx context.Context, key string) error { panic("boom") }

func TestPanicIsAFailure(t *testing.T) {
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "panicky", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return panicky{memory.New()}, nil
	}}, conformance.Only("delete"))
	for _, n := range []string{"delete/present", "delete/absent"} {
		r, _ := rep.Lookup(n)
		if r.Status != conformance.Fail || !strings.Contains(r.Reason, "panic: boom") {
			t.Errorf("%s: %s %q, want a failure reporting the panic", n, r.Status, r.Reason)
		}
	}
}

func TestOpenFailure(t *testing.T) {
	boom := errors.New("no such server")
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "down", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return nil, boom
	}})
	if !rep.Failed() || rep.Results[0].Name != "open" || !strings.Contains(rep.Results[0].Reason, "no such server") {
		t.Fatalf("open result %+v", rep.Results[0])
	}
	for _, r := range rep.Results[1:] {
		if r.Status != conformance.Skip {
			t.Errorf("%s: %s after a failed open, want SKIP", r.Name, r.Status)
		}
	}
	rep = conformance.Check(t.Context(), conformance.Harness{Name: "nil"})
	if !rep.Failed() {
		t.Error("a harness without Open did not fail")
	}
}

func TestCancelledRunSkipsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h := conformance.Harness{Name: "memory", Open: func(c context.Context, dir string) (backends.Backend, error) {
		cancel() // during the first open: the probe
		return memory.New(), nil
	}}
	rep := conformance.Check(ctx, h)
	if r := rep.Results[0]; r.Name != "open" || r.Status != conformance.Pass {
		t.Fatalf("open: %+v", r)
	}
	for _, r := range rep.Results[1:] {
		if r.Status != conformance.Skip || !strings.Contains(r.Reason, "cancelled") {
			t.Errorf("%s: %s %q, want SKIP because the run was cancelled", r.Name, r.Status, r.Reason)
		}
	}
}

func TestOnlyAndTable(t *testing.T) {
	rep := conformance.Check(t.Context(), nullHarness(), conformance.Only("lock", "miss/"))
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Name)
	}
	want := []string{"open", "miss", "lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel", "lock/owner-context",
		"lock/keys", "lock/after-failure", "lock/fenced"}
	if !slices.Equal(names, want) {
		t.Fatalf("Only selected %q, want %q", names, want)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want)+2 {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), len(want)+2, out)
	}
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"CHECK", "STATUS", "TIME", "REASON"}) {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[3]); len(f) < 4 || f[0] != "lock/exclusive" || f[1] != "SKIP" ||
		!strings.HasSuffix(lines[3], "backend lacks capability lock") {
		t.Errorf("row %q", lines[3])
	}
	if last := lines[len(lines)-1]; last != "null: 2 passed, 0 failed, 9 skipped (capabilities: discards)" {
		t.Errorf("summary %q", last)
	}
	// Reports encode to JSON with readable statuses and decode back.
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"status":"SKIP"`)) {
		t.Errorf("JSON %s", js)
	}
	var back conformance.Report
	if err := json.Unmarshal(js, &back); err != nil || len(back.Results) != len(rep.Results) || back.Results[3].Status != conformance.Skip {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

func TestChecksDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range conformance.Checks() {
		if c.Description == "" {
			t.Errorf("%s has no description", c.Name)
		}
		if seen[c.Name] {
			t.Errorf("%s twice", c.Name)
		}
		seen[c.Name] = true
	}
}

// closePanicky is a memory backend whose Close panics.
type closePanicky struct{ *memory.Backend }

func (c closePanicky) Close() error { _ = c.Backend.Close(); panic("close boom") }

// TestClosePanicIsAFailure: a Close that panics — in a check and in the
// suite's cleanup — fails checks with a reason; Check returns a full report.
func TestClosePanicIsAFailure(t *testing.T) {
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "close-panics", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return closePanicky{memory.New()}, nil
	}}, conformance.Only("close/idempotent", "miss"), conformance.Patience(time.Second))
	if len(rep.Results) != 3 {
		t.Fatalf("got %d results, want open, miss and close/idempotent: %+v", len(rep.Results), rep.Results)
	}
	if r := rep.Results[0]; r.Status != conformance.Pass {
		t.Errorf("open: %s %q, want PASS (Close is judged by the close checks)", r.Status, r.Reason)
	}
	r, _ := rep.Lookup("close/idempotent")
	if r.Status != conformance.Fail || !strings.Contains(r.Reason, "panic: close boom") {
		t.Errorf("close/idempotent: %s %q, want a failure reporting the panic", r.Status, r.Reason)
	}
	r, _ = rep.Lookup("miss")
	if r.Status != conformance.Fail || !strings.Contains(r.Reason, "Close of instance 1 panicked: close boom") {
		t.Errorf("miss: %s %q, want a failure naming the panic in the suite's Close", r.Status, r.Reason)
	}
}

// closeHanging is a memory backend whose Close never returns.
type closeHanging struct {
	*memory.Backend
	release chan struct{}
}

func (c closeHanging) Close() error { <-c.release; return nil }

func TestCloseHangIsAFailure(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "close-hangs", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return closeHanging{memory.New(), release}, nil
	}}, conformance.Only("miss"), conformance.Patience(100*time.Millisecond))
	r, _ := rep.Lookup("miss")
	if r.Status != conformance.Fail || !strings.Contains(r.Reason, "did not return within") {
		t.Errorf("miss: %s %q, want a failure naming the Close that did not return", r.Status, r.Reason)
	}
}

// goPanicky panics in Get when two Gets overlap: only in a goroutine that a
// check started. The program must not crash.
type goPanicky struct {
	*memory.Backend
	inflight *atomic.Int64
}

func (g goPanicky) Get(ctx context.Context, key string) (backends.Entry, error) {
	defer g.inflight.Add(-1)
	if g.inflight.Add(1) > 1 {
		panic("concurrent boom")
	}
	runtime.Gosched()
	return g.Backend.Get(ctx, key)
}

func TestPanicInACheckGoroutineIsAFailure(t *testing.T) {
	var n atomic.Int64
	rep := conformance.Check(t.Context(), conformance.Harness{Name: "go-panicky", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		return goPanicky{memory.New(), &n}, nil
	}}, conformance.Only("concurrent"), conformance.Concurrency(8, 2000))
	r, _ := rep.Lookup("concurrent")
	if r.Status != conformance.Fail || !strings.Contains(r.Reason, "concurrent boom") {
		t.Errorf("concurrent: %s %q, want a failure reporting the panic in a goroutine", r.Status, r.Reason)
	}
}

// TestStress: under Stress the race-hunting checks repeat their scenario,
// and still pass on a correct backend.
func TestStress(t *testing.T) {
	var opens atomic.Int64
	h := conformance.Harness{Name: "memory", Open: func(ctx context.Context, dir string) (backends.Backend, error) {
		opens.Add(1)
		return memory.New(), nil
	}}
	rep := conformance.Check(t.Context(), h, conformance.Only("concurrent"), conformance.Stress(300*time.Millisecond))
	if rep.Failed() {
		t.Fatalf("failures: %q", rep.Failures())
	}
	for _, n := range []string{"concurrent", "concurrent/own-keys"} {
		if r, _ := rep.Lookup(n); r.Duration < 300*time.Millisecond {
			t.Errorf("%s ran %v under Stress(300ms), want at least that long", n, r.Duration)
		}
	}
}
