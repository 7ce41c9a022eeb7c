package region

import (
	"testing"
	"time"
)

// TestWallClockFollowsTimeNow checks that the one-read clock stays within
// its resync bound of time.Now, across resyncs.
func TestWallClockFollowsTimeNow(t *testing.T) {
	var c wallClock
	deadline := time.Now().Add(3 * clockResync)
	for n := 0; time.Now().Before(deadline) || n < 1000; n++ {
		before := time.Now().UnixNano()
		got := c.unixNano()
		after := time.Now().UnixNano()
		// The anchor was taken with time.Now at most clockResync ago, and
		// monotonic and wall clocks agree to microseconds over that time.
		if got < before-int64(time.Millisecond) || got > after+int64(time.Millisecond) {
			t.Fatalf("read %d: clock says %d, time.Now between %d and %d", n, got, before, after)
		}
	}
}

// TestWallClockFollowsAStep checks that a stale anchor (as after a step of
// the wall clock, which the monotonic clock does not see) is replaced once
// resync has passed.
func TestWallClockFollowsAStep(t *testing.T) {
	var c wallClock
	now := time.Now()
	// An anchor one hour behind the wall clock, taken just now by the
	// monotonic clock: what a wall clock stepped forward by an hour leaves.
	c.anchor.Store(&clockAnchor{wall: now.Add(-time.Hour).UnixNano(), mono: now})
	if got := c.unixNano(); got > now.Add(-59*time.Minute).UnixNano() {
		t.Fatalf("within resync the anchor's wall time is used; got %v", time.Unix(0, got))
	}
	time.Sleep(clockResync + time.Millisecond)
	if got, want := c.unixNano(), time.Now().UnixNano(); got < want-int64(time.Second) {
		t.Fatalf("after resync the clock is still behind: %v, want about %v", time.Unix(0, got), time.Unix(0, want))
	}
}
