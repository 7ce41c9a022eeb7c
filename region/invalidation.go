package region

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// InvalidationStrategy decides what Region.Invalidate records and which
// entries it has made missing or stale (dogpile's
// RegionInvalidationStrategy). A region uses BackendInvalidation over its
// own backend unless WithInvalidationStrategy installs another.
//
// Implementations must be safe for concurrent use. Expiration, versions and
// IgnoreExpiration stay the region's business: a strategy only answers for
// region-wide invalidations.
type InvalidationStrategy interface {
	// Invalidate records that every entry created before now is, from now
	// on, missing (Hard) or stale (Soft). now is the region's clock
	// (WithClock). mode is Hard or Soft; the region checks it.
	Invalidate(ctx context.Context, mode InvalidationMode, now time.Time) error

	// Invalidated reports whether an entry created at created has been
	// invalidated, and how: Hard (the entry is missing) wins over Soft (the
	// entry is stale). It is called on every read that finds an entry, so
	// it must be fast; it cannot fail: a strategy that cannot tell says
	// what it last knew.
	Invalidated(ctx context.Context, created time.Time) (mode InvalidationMode, invalidated bool)
}

// WithInvalidationStrategy makes the region record and judge region-wide
// invalidations with st instead of marks stored through its backend.
func WithInvalidationStrategy(st InvalidationStrategy) Option {
	return func(c *config) error {
		if st == nil {
			return fmt.Errorf("%w: WithInvalidationStrategy: strategy is nil", ErrBadOption)
		}
		c.strategy = st
		return nil
	}
}

// BackendInvalidation returns the default invalidation strategy, storing its
// marks in b: Invalidate writes the time of the invalidation under a
// reserved key (one for Hard, one for Soft), and entries created before the
// latest mark are invalidated. Marks written by other processes are re-read
// at most once per check interval (zero: on every read), and never from a
// backend that declares itself process-local; marks written through the
// strategy itself count at once. A region's default is BackendInvalidation
// over its own backend with its WithInvalidationCheck interval; pass another
// backend (say, a shared Redis for regions of in-process memory backends) to
// make invalidations reach every process that shares it. The caller keeps
// ownership of b.
func BackendInvalidation(b backends.Backend, check time.Duration) InvalidationStrategy {
	m := &backendMarks{}
	m.init(b, backends.IsShared(b), check, slog.Default())
	return m
}

// backendMarks is BackendInvalidation. A region embeds one by value and
// calls it directly, so that a hit pays no interface call.
type backendMarks struct {
	b          backends.Backend
	shared     bool // re-read marks that other processes may have written
	check      time.Duration
	logger     *slog.Logger
	inv        atomic.Pointer[invalidations]
	refreshing atomic.Bool
}

func (m *backendMarks) init(b backends.Backend, shared bool, check time.Duration, logger *slog.Logger) {
	m.b, m.shared, m.check, m.logger = b, shared, check, logger
	m.inv.Store(&invalidations{})
}

// Invalidate implements InvalidationStrategy.
func (m *backendMarks) Invalidate(ctx context.Context, mode InvalidationMode, t time.Time) error {
	now := t.UnixNano()
	k := hardKey
	if mode == Soft {
		k = softKey
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(now))
	if err := m.b.Set(ctx, k, backends.Entry{Payload: buf[:], Created: time.Unix(0, now)}); err != nil {
		return fmt.Errorf("store invalidation: %w", err)
	}
	for {
		old := m.inv.Load()
		n := *old
		if mode == Hard {
			n.hard = max(n.hard, now)
		} else {
			n.soft = max(n.soft, now)
		}
		if m.inv.CompareAndSwap(old, &n) {
			return nil
		}
	}
}

// Invalidated implements InvalidationStrategy.
func (m *backendMarks) Invalidated(ctx context.Context, created time.Time) (InvalidationMode, bool) {
	inv := m.current(ctx)
	c := created.UnixNano()
	switch {
	case c < inv.hard:
		return Hard, true
	case c < inv.soft:
		return Soft, true
	}
	return 0, false
}

// current returns the marks, re-reading them from a shared backend when they
// are older than the check interval. Only one goroutine re-reads at a time;
// the others use the marks they have.
func (m *backendMarks) current(ctx context.Context) *invalidations {
	if !m.shared {
		return m.inv.Load()
	}
	return m.currentAt(ctx, time.Now().UnixNano())
}

// currentAt is current for a caller that has just read the wall clock (now,
// Unix nanoseconds): a hit reads it once for both the marks and expiration.
func (m *backendMarks) currentAt(ctx context.Context, now int64) *invalidations {
	inv := m.inv.Load()
	if !m.shared {
		return inv
	}
	if now-inv.checked < int64(m.check) && inv.checked != 0 {
		return inv
	}
	if !m.refreshing.CompareAndSwap(false, true) {
		return inv
	}
	defer m.refreshing.Store(false)
	es, err := backends.GetMulti(ctx, m.b, []string{hardKey, softKey})
	if err == nil && len(es) != 2 {
		err = fmt.Errorf("%w: %d entries for 2 keys", backends.ErrBadResult, len(es))
	}
	if err != nil {
		m.logger.Warn("regioncache: cannot read invalidation marks", "err", err)
		return inv
	}
	read := func(e *backends.Entry) int64 {
		if e == nil || len(e.Payload) != 8 {
			return 0
		}
		return int64(binary.BigEndian.Uint64(e.Payload))
	}
	hard, soft := read(es[0]), read(es[1])
	for {
		old := m.inv.Load()
		n := &invalidations{hard: max(old.hard, hard), soft: max(old.soft, soft), checked: now}
		if m.inv.CompareAndSwap(old, n) {
			// A mark this region knows but the backend no longer has (its
			// own eviction, a storage TTL, a restart) is stored again, so
			// that processes that did not see it do not take invalidated
			// values for valid ones.
			m.repair(ctx, hardKey, n.hard, hard)
			m.repair(ctx, softKey, n.soft, soft)
			return n
		}
	}
}

// repair stores the mark known under k again when the backend's (read) is
// older.
func (m *backendMarks) repair(ctx context.Context, k string, known, read int64) {
	if known == 0 || read >= known {
		return
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(known))
	err := m.b.Set(ctx, k, backends.Entry{Payload: buf[:], Created: time.Unix(0, known)})
	m.logger.Warn("regioncache: an invalidation mark was missing from the backend; stored it again", "mark", strings.TrimPrefix(k, "\x00"), "err", err)
}
