package region

import (
	"sync/atomic"
	"time"
)

// wallClock reads the wall clock, as Unix nanoseconds, with one clock read
// instead of time.Now's two (time.Now reads the wall and the monotonic clock;
// on virtual machines each read is a paravirtual clock call of about 30 ns,
// a sizeable share of a hit served from process memory). It adds the
// monotonic time elapsed since an anchor to the anchor's wall time, and takes
// a new anchor with time.Now once resync has passed on the monotonic clock,
// so the value it returns is never more than resync behind a step of the wall
// clock (a correction, or a resume from suspend, during which the monotonic
// clock stops), and drifts from it by no more than the clock's slew over
// resync (microseconds).
//
// The zero value is ready to use.
type wallClock struct {
	anchor atomic.Pointer[clockAnchor]
}

type clockAnchor struct {
	wall int64     // Unix ns at mono
	mono time.Time // carries the monotonic reading
}

const clockResync = 10 * time.Millisecond

func (c *wallClock) unixNano() int64 {
	if a := c.anchor.Load(); a != nil {
		if d := time.Since(a.mono); d >= 0 && d < clockResync {
			return a.wall + int64(d)
		}
	}
	t := time.Now()
	c.anchor.Store(&clockAnchor{wall: t.UnixNano(), mono: t})
	return t.UnixNano()
}
