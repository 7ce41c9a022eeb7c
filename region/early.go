package region

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// engineCfg is the call configuration of the engine's entry points
// (GetOrCreate, GetOrCreateMulti, GetOrCreateFile): callCfg without what
// only reads honour (IgnoreExpiration).
func (s *state) engineCfg(opts []CallOption) callConfig {
	c := s.callCfg(opts)
	c.ignoreExpiration = false
	return c
}

// WithEarlyRefresh makes EarlyRefresh(beta) the default of every
// GetOrCreate, GetOrCreateMulti, GetOrCreateFile and Loader call of the
// region (a call's own EarlyRefresh overrides it; EarlyRefresh(0) turns it
// off). Unlike the call option, it keeps option-less hits free of
// allocations.
func WithEarlyRefresh(beta float64) Option {
	return func(c *config) error {
		if !(beta >= 0) || math.IsInf(beta, 0) {
			return fmt.Errorf("%w: WithEarlyRefresh: want a finite beta >= 0, got %v", ErrBadOption, beta)
		}
		c.earlyBeta = beta
		return nil
	}
}

// forceEarly marks the read of a call as chosen for early refresh: the hit
// path, having chosen, hands over to the engine without choosing again.
type forceEarly struct{}

func (forceEarly) applyCall(c *callConfig) { c.forceEarly = true }

// earlyOpts are the options of a call the hit path chose for early refresh.
var earlyOpts = []CallOption{forceEarly{}}

// creatorTimes remembers how long creators ran, for EarlyRefresh: per key,
// in a fixed table of slots that keys hash into (keys sharing a slot share
// a measure), so that memory stays bounded and a hit allocates nothing. A
// key created only by other processes has no measure here; the region's
// last creator run time, or else a twentieth of the expiration, stands in.
type creatorTimes struct {
	seed  maphash.Seed
	last  atomic.Int64
	max   atomic.Int64 // the longest run time recorded: a bound that spares most hits the hashing
	slots [256]atomic.Int64
}

func (c *creatorTimes) init() { c.seed = maphash.MakeSeed() }

func (c *creatorTimes) slot(bk string) *atomic.Int64 {
	return &c.slots[maphash.String(c.seed, bk)%uint64(len(c.slots))]
}

func (c *creatorTimes) record(bk string, d time.Duration) {
	d = max(d, 1)
	c.slot(bk).Store(int64(d))
	c.last.Store(int64(d))
	for {
		m := c.max.Load()
		if int64(d) <= m || c.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// delta is the creator run time to assume for bk.
func (c *creatorTimes) delta(bk string, exp time.Duration) time.Duration {
	if d := c.slot(bk).Load(); d > 0 {
		return time.Duration(d)
	}
	if d := c.last.Load(); d > 0 {
		return time.Duration(d)
	}
	return exp / 20
}

// nearExpiry reports whether a fresh entry with left before expiry may be
// chosen by early: −ln U exceeds 40 with probability e⁻⁴⁰, so an entry
// further from expiry than 40·beta times the longest creator run time is
// not worth a random number (nor a second clock read).
func (s *state) nearExpiry(left time.Duration, beta float64) bool {
	m := s.creators.max.Load()
	return m == 0 || float64(left) <= 40*float64(m)*beta
}

// early reports whether a fresh entry e of bk is chosen for early
// regeneration under cfg: XFetch (Vattani, Chierichetti and Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015) regenerates
// when age + delta·beta·(−ln U) ≥ expiration, U uniform in (0, 1], delta the
// creator's run time: the nearer expiry and the slower the creator, the
// likelier. Callers check e is fresh (so age ≤ expiration) first.
func (s *state) early(bk string, e *backends.Entry, cfg *callConfig) bool {
	if cfg.forceEarly {
		return true
	}
	exp := cfg.expiration
	if cfg.beta <= 0 || exp <= 0 {
		return false
	}
	left := exp - s.now().Sub(e.Created)
	scale := float64(s.creators.delta(bk, exp)) * cfg.beta
	if float64(left) > 40*scale {
		return false
	}
	return float64(left) <= -scale*math.Log(1-rand.Float64())
}
