package main

import (
	"regexp"
	"strconv"
	"testing"
)

// The demo's two stampedes, each across real worker processes: a cold key
// (one creation, everyone else waits) and an expired key (one creation,
// everyone else is served the stale value).
func TestDemoAcrossProcessesColdThenExpired(t *testing.T) {
	code, out, errs := runCmd(t, "", "demo", "-processes", "3", "-goroutines", "8", "-work", "50ms")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	nums := func(name string) []int {
		var r []int
		for _, m := range regexp.MustCompile(`(?m)^`+name+`: (\d+)$`).FindAllStringSubmatch(out, -1) {
			n, _ := strconv.Atoi(m[1])
			r = append(r, n)
		}
		if len(r) != 2 {
			t.Fatalf("want two %q lines:\n%s", name, out)
		}
		return r
	}
	callers, creations, stale, errors := nums("callers"), nums("creations"), nums("served stale"), nums("errors")
	for i, phase := range []string{"cold", "expired"} {
		if callers[i] != 24 || creations[i] != 1 || errors[i] != 0 {
			t.Fatalf("%s: %d callers, %d creations, %d errors; want 24, 1, 0\n%s", phase, callers[i], creations[i], errors[i], out)
		}
	}
	if stale[0] != 0 || stale[1] < 1 {
		t.Fatalf("served stale: cold %d (want 0), expired %d (want > 0)\n%s", stale[0], stale[1], out)
	}
}
