package conformance

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is the outcome of one check.
type Status int

// The outcomes of a check.
const (
	Pass Status = iota // the backend did what the check demands
	Fail               // it did not; Result.Reason says what went wrong
	Skip               // the check does not apply; Result.Reason says why
)

// String returns "PASS", "FAIL" or "SKIP".
func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Skip:
		return "SKIP"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText implements encoding.TextMarshaler (for JSON reports).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	switch string(b) {
	case "PASS":
		*s = Pass
	case "FAIL":
		*s = Fail
	case "SKIP":
		*s = Skip
	default:
		return fmt.Errorf("conformance: unknown status %q", b)
	}
	return nil
}

// Result is the outcome of one check.
type Result struct {
	// Name is the check's name, such as "roundtrip/large" (see CheckNames).
	Name string `json:"name"`
	// Status is whether the check passed, failed or was skipped.
	Status Status `json:"status"`
	// Reason explains a failure or a skip; it is empty for a pass.
	Reason string `json:"reason,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration"`
}

// Report is the outcome of running the suite against one backend.
type Report struct {
	// Name is the Harness's name.
	Name string `json:"name"`
	// Capabilities are those the backend declared when the suite opened it.
	Capabilities Features `json:"capabilities"`
	// Results has one element per check, in the suite's order.
	Results []Result `json:"results"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == Fail {
			return true
		}
	}
	return false
}

// Counts returns how many checks passed, failed and were skipped.
func (r Report) Counts() (pass, fail, skip int) {
	for _, res := range r.Results {
		switch res.Status {
		case Pass:
			pass++
		case Fail:
			fail++
		case Skip:
			skip++
		}
	}
	return
}

// Lookup returns the result of the check called name.
func (r Report) Lookup(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Failures returns the names of the failed checks, in order.
func (r Report) Failures() []string {
	var names []string
	for _, res := range r.Results {
		if res.Status == Fail {
			names = append(names, res.Name)
		}
	}
	return names
}

// WriteTable writes the report as an aligned table, one check a line,
// followed by a summary line:
//
//	CHECK            STATUS  TIME   REASON
//	roundtrip/empty  PASS    1ms
//	lock/exclusive   SKIP    0s     backend lacks capability lock
//	...
//	memory: 20 passed, 0 failed, 9 skipped (capabilities: multi|tags|list)
//
// Multi-line reasons are folded onto one line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tTIME\tREASON")
	for _, res := range r.Results {
		reason := strings.Join(strings.Fields(res.Reason), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Name, res.Status, roundDuration(res.Duration), reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p, f, s := r.Counts()
	_, err := fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped (capabilities: %s)\n", r.Name, p, f, s, r.Capabilities)
	return err
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
