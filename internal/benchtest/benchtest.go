// Package benchtest holds the measuring loop of the benchmarks that judge an
// operation against a floor in the same run: blocks of the operation and of
// the floor alternate (which goes first swaps every round), so that load
// that comes and goes on a shared machine falls on both alike, and the
// median of the per-round ratios is what the bars are judged by.
package benchtest

import (
	"slices"
	"testing"
	"time"
)

// Block is how many calls of each side one round times.
const Block = 8

// Interleaved runs op and floor in alternating blocks of Block calls each
// until b.N calls of both have been made together, and reports three
// metrics: the median per-round ratio of op's time to floor's as ratioUnit
// (e.g. "hit/get"), and the median per-call times of each as opUnit and
// floorUnit (e.g. "hit-ns", "get-ns"); an empty unit is not reported. It
// resets b's timer first and reports allocations.
func Interleaved(b *testing.B, op, floor func(), ratioUnit, opUnit, floorUnit string) {
	b.Helper()
	timeBlock := func(f func()) time.Duration {
		t := time.Now()
		for range Block {
			f()
		}
		return time.Since(t)
	}
	var ratios, ops, floors []float64
	b.ReportAllocs()
	b.ResetTimer()
	for done, k := 0, 0; done < b.N; done, k = done+2*Block, k+1 {
		var to, tf time.Duration
		if k%2 == 0 {
			to, tf = timeBlock(op), timeBlock(floor)
		} else {
			tf, to = timeBlock(floor), timeBlock(op)
		}
		ratios = append(ratios, float64(to)/float64(tf))
		ops = append(ops, float64(to.Nanoseconds())/Block)
		floors = append(floors, float64(tf.Nanoseconds())/Block)
	}
	b.StopTimer()
	for _, m := range []struct {
		xs   []float64
		unit string
	}{{ratios, ratioUnit}, {ops, opUnit}, {floors, floorUnit}} {
		if m.unit != "" {
			b.ReportMetric(Median(m.xs), m.unit)
		}
	}
}

// Median is the value at the middle rank of xs (rounded down), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
