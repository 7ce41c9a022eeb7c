package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
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
		"roundtrip/no-alias", "multi/native", "shared-storage",
		"lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel", "lock/owner-context",
		"expiry", "tags", "list", "stats", "files/copy", "files/move",
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
	want := []string{"open", "miss", "lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel", "lock/owner-context"}
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
	if last := lines[len(lines)-1]; last != "null: 2 passed, 0 failed, 6 skipped (capabilities: discards)" {
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
