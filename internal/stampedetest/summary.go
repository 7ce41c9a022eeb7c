package stampedetest

import (
	"fmt"
	"slices"
	"time"
)

// Distribution summarises latencies as "n=<count> median <d> p90 <d> p99 <d>
// max <d>", or "none" when there are none. A percentile is the sample at
// that rank (nearest rank, rounded down); max is the slowest sample.
func Distribution(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d median %v p90 %v p99 %v max %v", len(s), at(0.5), at(0.9), at(0.99), s[len(s)-1])
}

// Within counts the latencies of at most bound.
func Within(ds []time.Duration, bound time.Duration) int {
	n := 0
	for _, d := range ds {
		if d <= bound {
			n++
		}
	}
	return n
}

// Median is the latency at the middle rank (rounded down), 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
