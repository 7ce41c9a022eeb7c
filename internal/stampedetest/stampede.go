package stampedetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// StampedeKind is the kind of the built-in stampede worker ([Spec]); [Main]
// runs it without being told.
const StampedeKind = "stampede"

// FreshPrefix starts every value a stampede worker's creator returns:
// "fresh-<pid of the creating process>".
const FreshPrefix = "fresh-"

// Spec describes a stampede: what each worker process does.
type Spec struct {
	Backend    string        // registered backend name, for region.Open
	Args       backends.Args // its arguments
	Expiration time.Duration // the region's expiration (0: none)
	Key        string        // the one key every caller asks for
	Goroutines int           // callers per process
	Work       time.Duration // how long the creator takes
	// ReadOnly makes each caller only read the key (region.Get, ignoring
	// expiration) instead of GetOrCreate: the floor of a stale caller.
	ReadOnly bool
	// Spin, if positive, makes each caller only keep a CPU busy for that
	// long, with no cache and no I/O: the floor the machine's scheduler
	// sets for callers released together (see [Expired]).
	Spin time.Duration
	// Nap, if positive, makes each caller only sleep that long once: the
	// floor of a caller that waits for one reply (a round trip) and must be
	// woken, with no cache and no server.
	Nap time.Duration
}

// Result is what one stampede worker reports.
type Result struct {
	Created     int   // creator runs in this process
	Creations   int64 // the region's Stats().Creations
	StaleServed int64 // the region's Stats().StaleServed
	CreatorEnd  int64 // wall clock when this process's creator ended, Unix ns; 0 if it did not create
	Calls       []Call
	Errors      []string
}

// Call is one caller's call, as the worker saw it.
type Call struct {
	Value   string        // the value returned ("" after an error)
	Latency time.Duration // from the release to the call's return
	Return  int64         // wall clock of the return, Unix ns
}

// Outcome is what all the workers of one stampede reported, one [Result] per
// process.
type Outcome []Result

// Run launches procs stampede workers with spec, releases them together once
// all are ready, and returns their results. It fails t if a worker cannot be
// started or set up, if any call returned an error, or if a worker reports
// other than spec.Goroutines calls.
func Run(t testing.TB, procs int, spec Spec) Outcome {
	t.Helper()
	out := Outcome(RunAll[Result](t, procs, StampedeKind, func(int) any { return spec }))
	for i, r := range out {
		if len(r.Errors) > 0 {
			t.Fatalf("stampedetest: worker %d: %d errors, first %q", i, len(r.Errors), r.Errors[0])
		}
		if len(r.Calls) != spec.Goroutines {
			t.Fatalf("stampedetest: worker %d returned %d calls, want %d", i, len(r.Calls), spec.Goroutines)
		}
	}
	return out
}

// Created is how many times a creator ran, in all processes.
func (o Outcome) Created() int {
	n := 0
	for _, r := range o {
		n += r.Created
	}
	return n
}

// Creations is the creations the regions counted, in all processes.
func (o Outcome) Creations() int64 {
	var n int64
	for _, r := range o {
		n += r.Creations
	}
	return n
}

// StaleServed is the stale values the regions counted as served, in all
// processes.
func (o Outcome) StaleServed() int64 {
	var n int64
	for _, r := range o {
		n += r.StaleServed
	}
	return n
}

// Calls returns every process's calls.
func (o Outcome) Calls() []Call {
	var cs []Call
	for _, r := range o {
		cs = append(cs, r.Calls...)
	}
	return cs
}

// Latencies returns the latencies of the calls that returned a value
// matching keep (every call if keep is nil).
func (o Outcome) Latencies(keep func(value string) bool) []time.Duration {
	var ds []time.Duration
	for _, c := range o.Calls() {
		if keep == nil || keep(c.Value) {
			ds = append(ds, c.Latency)
		}
	}
	return ds
}

// Tail is how long after the (last) creator's end the last caller returned:
// the DESIGN §9 figure of a cold-key stampede (bar: 20 ms).
func (o Outcome) Tail() time.Duration {
	var end, last int64
	for _, r := range o {
		end = max(end, r.CreatorEnd)
		for _, c := range r.Calls {
			last = max(last, c.Return)
		}
	}
	return time.Duration(last - end)
}

// ColdErr checks a cold-key stampede: it returns nil if exactly one creator
// ran, the regions counted exactly one creation, and every caller got the
// value that creation made, and otherwise an error saying what happened.
func (o Outcome) ColdErr() error {
	calls := o.Calls()
	if n := o.Created(); n != 1 {
		return fmt.Errorf("%d creations for %d callers in %d processes, want exactly 1", n, len(calls), len(o))
	}
	if n := o.Creations(); n != 1 {
		return fmt.Errorf("regions report %d creations in all, want 1", n)
	}
	for _, c := range calls {
		if c.Value != calls[0].Value || !strings.HasPrefix(c.Value, FreshPrefix) {
			return fmt.Errorf("a caller got %q, another %q: want the one created value", c.Value, calls[0].Value)
		}
	}
	return nil
}

// Cold runs rounds of a cold-key stampede of procs processes, the round-th
// with spec(round) (each round needs a key or store no earlier round used).
// It fails t unless every round passes [Outcome.ColdErr], and logs the last
// caller's return after the creator's end ([Outcome.Tail]) of each round.
func Cold(t testing.TB, procs, rounds int, spec func(round int) Spec) []time.Duration {
	t.Helper()
	var tails []time.Duration
	var s Spec
	for round := range rounds {
		s = spec(round)
		o := Run(t, procs, s)
		if err := o.ColdErr(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		tails = append(tails, o.Tail())
	}
	var tail any = tails
	if len(tails) == 1 {
		tail = tails[0]
	}
	t.Logf("%s: %d×%d callers, %v creator: last caller returned %v after the creator's end (bar ≤ 20ms)", s.Backend, procs, s.Goroutines, s.Work, tail)
	return tails
}

// Served sorts the callers of an expired-key stampede by what they got.
type Served struct {
	Stale, Fresh   int             // callers served the stale value; a created one
	Wrong          []string        // any other values
	StaleLatencies []time.Duration // the stale callers' latencies
}

// Served sorts o's calls: the value stale, a created value ([FreshPrefix]),
// anything else.
func (o Outcome) Served(stale string) Served {
	var s Served
	for _, c := range o.Calls() {
		switch {
		case c.Value == stale:
			s.Stale++
			s.StaleLatencies = append(s.StaleLatencies, c.Latency)
		case strings.HasPrefix(c.Value, FreshPrefix):
			s.Fresh++
		default:
			s.Wrong = append(s.Wrong, c.Value)
		}
	}
	return s
}

// String reports the stale callers' count, how many were served within 1 ms,
// the slowest stale caller, the fresh count and the stale callers' latency
// [Distribution]: the figures of DESIGN §9's expired-key bar.
func (s Served) String() string {
	slowest := time.Duration(0)
	if len(s.StaleLatencies) > 0 {
		slowest = slices.Max(s.StaleLatencies)
	}
	return fmt.Sprintf("%d callers served the stale value (%d within 1ms, slowest stale %v), %d the new one; stale callers' latency %s",
		s.Stale, Within(s.StaleLatencies, time.Millisecond), slowest, s.Fresh, Distribution(s.StaleLatencies))
}

// AllStaleErr checks an expired-key stampede whose creator outlasts the
// callers' arrival: it returns nil if exactly one caller got a created value
// and every other one the value stale, each counted by its region as served
// stale, and otherwise an error saying what happened.
func (o Outcome) AllStaleErr(stale string) error {
	s, n := o.Served(stale), len(o.Calls())
	if s.Fresh != 1 || s.Stale != n-1 || o.StaleServed() != int64(s.Stale) {
		return fmt.Errorf("fresh %d, stale %d (regions counted %d stale served); want 1 and %d", s.Fresh, s.Stale, o.StaleServed(), n-1)
	}
	return nil
}

// Expired runs one stampede of procs processes with spec on a key whose
// stored value stale has expired (the caller stored it). It fails t unless
// exactly one creator ran and every caller got either stale or a created
// value, logs the [Served] figures, and returns them with the outcome for
// the test's own checks.
func Expired(t testing.TB, procs int, spec Spec, stale string) (Outcome, Served) {
	t.Helper()
	o := Run(t, procs, spec)
	if n := o.Created(); n != 1 {
		t.Fatalf("%d creations for %d callers on an expired key, want exactly 1", n, procs*spec.Goroutines)
	}
	s := o.Served(stale)
	if len(s.Wrong) > 0 {
		t.Fatalf("%d callers got neither %q nor a created value, first %q", len(s.Wrong), stale, s.Wrong[0])
	}
	t.Logf("%s: %d×%d callers on an expired key, %v creator: %v", spec.Backend, procs, spec.Goroutines, spec.Work, s)
	if len(s.StaleLatencies) > 0 {
		// The floors the machine sets for the same burst of callers, with no
		// cache at all: each keeping a CPU busy for the median stale
		// caller's time (at most 100µs, a stale call's own work), and each
		// sleeping 100µs once (a round trip's wait and wake-up). On a machine
		// with fewer cores than processes the OS scheduler alone makes some
		// callers wait for others.
		spin := spec
		spin.Spin = min(max(Median(s.StaleLatencies), time.Microsecond), 100*time.Microsecond)
		nap := spec
		nap.Nap = 100 * time.Microsecond
		t.Logf("scheduler floor, the same burst only keeping a CPU busy for %v each: %s",
			spin.Spin.Round(time.Microsecond), Distribution(Run(t, procs, spin).Latencies(nil)))
		t.Logf("wake-up floor, the same burst only sleeping %v once each: %s",
			nap.Nap, Distribution(Run(t, procs, nap).Latencies(nil)))
	}
	return o, s
}
