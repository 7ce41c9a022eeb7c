package conformance_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/conformance/brokentest"
)

// fastOpts keep the runs on broken backends short: the faults do not need a
// 64 MiB value or a long patience to show.
var fastOpts = []conformance.Option{
	conformance.LargeValueSize(2*brokentest.LargeValueThreshold + 3),
	conformance.Patience(500 * time.Millisecond),
	conformance.ExpiryTTL(200 * time.Millisecond),
	conformance.CheckTimeout(time.Minute),
}

// TestBrokenBackendsAreCaught runs the whole suite on each deliberately
// broken backend: the check meant for its fault must fail, and the checks
// that do not touch the fault must not all fail with it.
func TestBrokenBackendsAreCaught(t *testing.T) {
	for _, f := range brokentest.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			rep := conformance.Check(t.Context(), f.Harness(), fastOpts...)
			res, ok := rep.Lookup(f.Check)
			if !ok {
				t.Fatalf("the report has no check %q", f.Check)
			}
			if res.Status != conformance.Fail {
				var b strings.Builder
				rep.WriteTable(&b)
				t.Fatalf("fault %q (%s) was not caught by check %q: status %s\n%s", f.Name, f.Description, f.Check, res.Status, b.String())
			}
			t.Logf("%s caught by %s: %s", f.Name, f.Check, res.Reason)
			if others := slices.DeleteFunc(rep.Failures(), func(n string) bool { return n == f.Check }); len(others) > 0 {
				t.Logf("also failed: %s", strings.Join(others, ", "))
			}
			// The suite is specific: the plain round trip is unaffected by
			// every one of these faults.
			// (Except a Close that panics, which the suite's own cleanup
			// meets after every check.)
			if r, _ := rep.Lookup("roundtrip/binary"); f.Name != "loses-metadata" && f.Name != "close-panics" && r.Status != conformance.Pass {
				t.Errorf("roundtrip/binary: %s %s, want PASS: the fault should not show there", r.Status, r.Reason)
			}
		})
	}
}

// TestCorrectWrappersPass: the capability checks pass on right
// implementations of the capabilities the broken ones get wrong.
func TestCorrectWrappersPass(t *testing.T) {
	mustPass := map[string][]string{
		"keyed-lock":   {"lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel"},
		"context-lock": {"lock/exclusive", "lock/trylock", "lock/unlock-elsewhere", "lock/release-twice", "lock/cancel", "lock/owner-context"},
		"storage-ttl":  {"expiry"},
		"files":        {"files/copy", "files/move"},
		"indexed":      {"multi/native", "read-paths", "tags", "list", "stats", "metadata/extremes"},
		"fenced-lock":  {"lock/exclusive", "lock/keys", "lock/after-failure", "lock/fenced"},
		"shared-dir":   {"shared-storage", "concurrent", "concurrent/own-keys"},
		"stored-files": {"files/copy", "files/move", "files/read-only", "files/temp", "read-paths"},
	}
	for _, f := range brokentest.Correct() {
		t.Run(f.Name, func(t *testing.T) {
			// A TTL long enough that a loaded machine still reads the entry
			// back before it expires.
			opts := append(slices.Clone(fastOpts), conformance.ExpiryTTL(time.Second))
			rep := conformance.Check(t.Context(), f.Harness(), opts...)
			if rep.Failed() {
				var b strings.Builder
				rep.WriteTable(&b)
				t.Fatalf("correct wrapper %q failed checks %q\n%s", f.Name, rep.Failures(), b.String())
			}
			want := mustPass[f.Name]
			if len(want) == 0 {
				t.Fatalf("no expectations for %q", f.Name)
			}
			for _, name := range want {
				if r, _ := rep.Lookup(name); r.Status != conformance.Pass {
					t.Errorf("%s: %s (%s), want PASS", name, r.Status, r.Reason)
				}
			}
		})
	}
}

func TestFaultLookup(t *testing.T) {
	names := conformance.CheckNames()
	for _, f := range brokentest.Faults() {
		if !slices.Contains(names, f.Check) {
			t.Errorf("fault %q names check %q, which the suite does not have", f.Name, f.Check)
		}
		if g, ok := brokentest.Lookup(f.Name); !ok || g.Check != f.Check {
			t.Errorf("Lookup(%q) = %v, %v", f.Name, g.Name, ok)
		}
	}
	if _, ok := brokentest.Lookup("no-such-fault"); ok {
		t.Error("Lookup of an unknown name succeeded")
	}
}
