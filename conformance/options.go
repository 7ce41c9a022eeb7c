package conformance

import (
	"strings"
	"time"
)

// Option adjusts how the suite runs.
type Option func(*config)

type config struct {
	largeSize int64
	timeout   time.Duration
	patience  time.Duration
	ttl       time.Duration
	only      []string
	writers   int
	ops       int
	stress    time.Duration
}

// DefaultLargeValueSize is the size of the value in the "roundtrip/large"
// check unless LargeValueSize says otherwise: 64 MiB.
const DefaultLargeValueSize = 64 << 20

func defaultConfig() *config {
	return &config{
		largeSize: DefaultLargeValueSize,
		timeout:   2 * time.Minute,
		patience:  5 * time.Second,
		ttl:       time.Second,
		writers:   4,
		ops:       300,
	}
}

// LargeValueSize sets the size in bytes of the value the "roundtrip/large"
// check writes and reads back (default 64 MiB). Raise it to prove a backend
// with very large values; lower it only for a slow transport, and say so.
// Sizes below 1 are ignored.
func LargeValueSize(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.largeSize = n
		}
	}
}

// CheckTimeout bounds each check (default 2 minutes). A check still running
// when it expires fails with a reason saying so, and the suite moves on; the
// check's context is cancelled, and a check that ignores that is abandoned.
func CheckTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// Patience is how long the suite waits for an operation that should return
// promptly — a Lock whose context was cancelled, a lock whose owner's context
// ended, an entry whose storage TTL has passed — before failing the check
// (default 5 seconds). It is a bound on hangs, not a performance target:
// raise it on a slow or loaded machine.
func Patience(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.patience = d
		}
	}
}

// ExpiryTTL is the storage TTL the "expiry" check opens the backend with
// through Harness.OpenWithTTL (default 1 second). A backend whose expiry has
// a coarser granularity (whole seconds, say) may need more.
func ExpiryTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.ttl = d
		}
	}
}

// Concurrency sets the shape of the "concurrent" check: how many goroutines
// write (as many again read) and how many operations each performs
// (defaults 4 and 300).
func Concurrency(writers, opsEach int) Option {
	return func(c *config) {
		if writers > 0 {
			c.writers = writers
		}
		if opsEach > 0 {
			c.ops = opsEach
		}
	}
}

// Stress makes the checks that hunt races — "concurrent",
// "concurrent/own-keys" and "shared-storage" — repeat their scenario with
// fresh keys until d has passed (by default each runs it once), for authors
// hunting a rare race. Each of those checks may then take d beyond
// CheckTimeout; the other checks are unaffected. Durations below 1 are
// ignored.
func Stress(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.stress = d
		}
	}
}

// Only restricts the suite to the named checks. A name selects the check of
// that name and every check below it: "lock" selects "lock/exclusive",
// "lock/trylock" and so on. See CheckNames for the names.
func Only(names ...string) Option {
	return func(c *config) { c.only = append(c.only, names...) }
}

func (c *config) selected(name string) bool {
	if len(c.only) == 0 {
		return true
	}
	for _, o := range c.only {
		o = strings.TrimSuffix(o, "/")
		if name == o || strings.HasPrefix(name, o+"/") {
			return true
		}
	}
	return false
}
