package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// This file is the dogpile engine: the one algorithm behind GetOrCreate,
// GetOrCreateMulti and GetOrCreateFile. Each entry point supplies a source
// (how to read, create and store its kind of value); the engine decides, per
// key, whether to serve, wait, regenerate or create, and does the locking,
// in-process sharing of creations, background work and accounting the same
// way for all three.
//
// Per key the engine does: read → classify → (fresh: return) →
//   - stale, not WaitForFresh: if a creation of the key is already in flight
//     in this process, or the lock is held anywhere, serve the stale value;
//     otherwise (lock won) regenerate, in the foreground or in the background.
//   - missing (or stale with WaitForFresh): if a creation of the key is in
//     flight in this process, wait for it and share its outcome (a creator
//     error is shared; a value is re-read, or shared when it was not stored);
//     otherwise lead: wait for the key's lock, re-read, and create only if the
//     value is still not fresh.
//
// Only leaders take locks, so a process holds at most one lock (and makes at
// most one pending lock request) per backend key, and waiters of one process
// never hand the lock on one by one.

// source is what differs between the engine's entry points.
type source[V any] interface {
	// read reads the slots' backend keys and sets each slot's status and
	// value (replacing, and discarding, any value the slot held).
	read(ctx context.Context, slots []*slot[V]) error
	// create runs the creator for the slots and returns one value per slot.
	create(ctx context.Context, slots []*slot[V]) ([]V, error)
	// store stores the created values of the slots (vs[i] for slots[i])
	// that should be cached, and returns the values to hand to the callers
	// (a file source returns read-only handles on the stored bytes). A
	// failure to store is logged and counted by store itself; it never
	// fails the call.
	store(ctx context.Context, slots []*slot[V], vs []V) []V
	// discard releases a value that will not be returned (closes a file).
	discard(v V)
	// shareable reports whether a created value may be handed to other
	// callers of the same process as it is (not for files: each caller
	// gets its own handle).
	shareable() bool
	// fromEntry sets sl from e, an entry another caller of this process
	// read or stored for the same backend key, as read would from the
	// backend, and reports whether it could (a file source cannot: each
	// caller opens its own file).
	fromEntry(ctx context.Context, sl *slot[V], e *backends.Entry) bool
}

// slot is one backend key of a call.
type slot[V any] struct {
	key, bk  string // the caller's key (the first one, for duplicates) and the backend key
	st       status
	v        V
	has      bool           // v holds a value (stale, or the result)
	mismatch bool           // the cached value is of another Go type
	counted  bool           // the call's outcome (hit, stale served, miss) is counted
	idx      int            // position in the call, to hand keys to a creator in order
	fl       *flight        // the flight this slot leads
	h        lock.Handle    // the lock this slot holds
	absent   bool           // the creator had no value for the key (CachedMulti): nothing is stored or returned
	ent      backends.Entry // the entry behind v, when hasEnt (read from or stored in the backend)
	hasEnt   bool
	early    bool // fresh, but chosen for early regeneration (EarlyRefresh)
}

// set gives sl a value that is not the one read into sl.ent (a created or
// shared value), so sl.ent no longer describes it.
func (sl *slot[V]) set(src source[V], v V) {
	if sl.has {
		src.discard(sl.v)
	}
	sl.v, sl.has = v, true
	sl.ent, sl.hasEnt = backends.Entry{}, false
}

func (sl *slot[V]) drop(src source[V]) {
	if sl.has {
		src.discard(sl.v)
	}
	var zero V
	sl.v, sl.has = zero, false
	sl.ent, sl.hasEnt = backends.Entry{}, false
}

// flight is a creation of one backend key in progress in this process.
type flight struct {
	done  chan struct{}
	val   any             // the created value, when shareable
	has   bool            // val is set
	err   error           // the creator's error, shared with the waiters
	retry bool            // the leader gave up without an outcome: waiters try again
	ent   *backends.Entry // the fresh entry the leader read or stored: waiters decode it instead of reading again
}

type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight of bk, starting one (leader == true) if none is in
// progress.
func (g *flightGroup) join(bk string) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[bk]; f != nil {
		return f, false
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	f = &flight{done: make(chan struct{})}
	g.m[bk] = f
	return f, true
}

// inFlight reports whether a creation of bk is in progress in this process.
func (g *flightGroup) inFlight(bk string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[bk] != nil
}

// finish ends f, which must be bk's flight, and wakes its waiters.
func (g *flightGroup) finish(bk string, f *flight) {
	g.mu.Lock()
	if g.m[bk] == f {
		delete(g.m, bk)
	}
	g.mu.Unlock()
	close(f.done)
}

// ErrCreatorFailed is wrapped, together with the creator's own error, by the
// error returned to callers that waited for another caller's creation of the
// same key in this process when that creation failed: they share its error
// instead of running the creator again one after another. The caller that
// ran the creator gets the creator's error as it is.
var ErrCreatorFailed = errors.New("regioncache: another caller's creator failed")

// panicError is what waiters of a creation whose creator panicked receive.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprintf("creator panicked: %v", p.value) }

// call is one run of the engine.
type call[V any] struct {
	s     *state
	cfg   *callConfig
	src   source[V]
	slots []*slot[V]
}

// run brings every slot to its result. The slots have been read once (status
// and value set). On error every value held by a slot is discarded.
func (c *call[V]) run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			for _, sl := range c.slots {
				sl.drop(c.src)
			}
		}
	}()
	s := c.s
	pending := make([]*slot[V], 0, len(c.slots))
	for i, sl := range c.slots {
		sl.idx = i
		switch {
		case sl.st == fresh:
			c.outcome(ctx, sl, EventHit)
			if sl.early && !s.discards {
				// A hit all the same: regenerated in the background if
				// this caller wins the lock, served as it is.
				pending = append(pending, sl)
			}
		case sl.st == stale && !c.cfg.waitFresh && !s.discards:
			// counted once it is known whether it is served or regenerated
			pending = append(pending, sl)
		default:
			c.outcome(ctx, sl, EventMiss)
			pending = append(pending, sl)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	if s.discards {
		// A store that keeps nothing has nothing to share or protect: every
		// caller runs its own creator, concurrently.
		for _, sl := range pending {
			sl.drop(c.src)
		}
		return c.createAndStore(ctx, pending)
	}
	for round := 0; len(pending) > 0; round++ {
		if err := ctx.Err(); err != nil {
			return c.ctxErr(ctx, "", err)
		}
		pending, err = c.round(ctx, pending)
		if err != nil {
			return err
		}
	}
	return nil
}

// round does one pass over the pending slots and returns those that must be
// tried again (their creation's leader gave up, or a shared outcome could not
// be used).
func (c *call[V]) round(ctx context.Context, pending []*slot[V]) ([]*slot[V], error) {
	s := c.s
	var lead, follow, staleCand []*slot[V]
	var waits []*flight
	for _, sl := range pending {
		if sl.early || sl.st == stale && !c.cfg.waitFresh {
			staleCand = append(staleCand, sl)
			continue
		}
		f, leader := s.flights.join(sl.bk)
		if leader {
			sl.fl = f
			lead = append(lead, sl)
		} else {
			follow = append(follow, sl)
			waits = append(waits, f)
		}
	}

	// Leaders take their locks in a fixed order, so that concurrent calls on
	// overlapping keys (in any process) cannot deadlock.
	slices.SortFunc(lead, func(a, b *slot[V]) int { return strings.Compare(a.bk, b.bk) })
	locked := lead[:0:0]
	for i, sl := range lead {
		h, err := c.lockOrWait(ctx, sl)
		if err != nil {
			c.abandon(locked)
			c.abandonFlights(lead[i:])
			return nil, err
		}
		if h == nil { // created elsewhere meanwhile: sl is done
			continue
		}
		sl.h = h
		locked = append(locked, sl)
	}
	lead = locked

	// Stale values: try the lock without waiting; serve the stale value if a
	// creation is in flight here or the lock is held anywhere.
	var regen, regenBG []*slot[V]
	var bg *background
	for _, sl := range staleCand {
		f, leader := s.flights.join(sl.bk)
		if !leader {
			c.outcome(ctx, sl, EventStaleServed)
			continue
		}
		if hh, ok := s.lock.(lock.HeldHinter); ok && hh.HeldElsewhere(sl.bk) {
			// Another process is known to be creating it: serve the
			// stale value without asking the lock (a round trip for a
			// shared lock).
			f.retry = true
			s.flights.finish(sl.bk, f)
			c.outcome(ctx, sl, EventStaleServed)
			continue
		}
		lctx := ctx
		inBG := c.cfg.background || sl.early
		if inBG {
			if bg == nil {
				bg = s.startBackground(ctx)
			}
			if bg == nil { // the region is closing: no new background work
				f.retry = true
				s.flights.finish(sl.bk, f)
				c.outcome(ctx, sl, EventStaleServed)
				continue
			}
			lctx = bg.ctx
		}
		h, ok, err := s.lock.TryLock(lctx, sl.bk)
		if err != nil || !ok {
			if err != nil {
				s.logger.Warn("regioncache: try-lock failed; serving stale value", "key", printable(sl.key), "err", err)
				s.event(ctx, EventError, sl.key, err, 0)
			}
			f.retry = true
			s.flights.finish(sl.bk, f)
			c.outcome(ctx, sl, EventStaleServed)
			continue
		}
		sl.fl, sl.h = f, h
		if inBG {
			regenBG = append(regenBG, sl)
		} else {
			regen = append(regen, sl)
		}
	}

	if len(regenBG) > 0 {
		c.regenerateInBackground(bg, regenBG)
		for _, sl := range regenBG {
			c.outcome(ctx, sl, EventStaleServed) // (early slots were counted as hits)
		}
	}
	if bg != nil {
		bg.release() // started but unused, or handed over
	}

	for _, sl := range regen {
		c.outcome(ctx, sl, EventMiss)
	}

	// Re-read what we hold: another caller may have created it meanwhile.
	held := append(lead, regen...)
	if len(held) > 0 {
		create, err := c.reread(ctx, held)
		if err != nil {
			return nil, err
		}
		if len(create) > 0 {
			if err := c.createAndStore(ctx, create); err != nil {
				return nil, err
			}
		}
	}

	// Wait for the creations of this process that others lead.
	var again, reread []*slot[V]
	var shared []*flight
	for i, sl := range follow {
		f := waits[i]
		start := time.Now()
		s.stats.add(EventLockWait)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, c.ctxErr(ctx, sl.key, ctx.Err())
		}
		s.notify(ctx, EventLockWait, sl.key, nil, time.Since(start))
		switch {
		case f.retry:
			sl.st = missing
			again = append(again, sl)
		case f.err != nil:
			var pe *panicError
			if errors.As(f.err, &pe) {
				return nil, fmt.Errorf("region %s: %s: %w: %w", s.name, printable(sl.key), ErrCreatorFailed, f.err)
			}
			return nil, fmt.Errorf("%w: %w", ErrCreatorFailed, f.err)
		case f.ent != nil && c.src.fromEntry(ctx, sl, f.ent):
			// The leader's entry, decoded for this caller: no second read
			// of the backend (a round trip per waiter on a remote store).
			switch sl.st {
			case fresh:
			case stale:
				// Fresh for the leader, already stale by this call's
				// expiration (ExpireAfter(0)): it is the value asked for.
				sl.st = fresh
			default:
				reread = append(reread, sl)
				shared = append(shared, f)
			}
		default:
			reread = append(reread, sl)
			shared = append(shared, f)
		}
	}
	if len(reread) > 0 {
		if err := c.src.read(ctx, reread); err != nil {
			return nil, err
		}
		for i, sl := range reread {
			if sl.st == fresh {
				continue
			}
			if v, ok := shared[i].val.(V); ok && shared[i].has {
				sl.set(c.src, v)
				sl.st = fresh
				continue
			}
			if sl.st == stale {
				// Created for this caller's wait, though already stale by this
				// call's expiration (ExpireAfter(0)): it is the value asked for.
				sl.st = fresh
				continue
			}
			sl.st = missing
			again = append(again, sl)
		}
	}
	return again, nil
}

// reread reads the held slots again; the fresh ones are done (their locks
// released, their flights finished with the value). It returns the rest.
func (c *call[V]) reread(ctx context.Context, held []*slot[V]) ([]*slot[V], error) {
	if err := c.src.read(ctx, held); err != nil {
		c.abandon(held)
		return nil, err
	}
	var create []*slot[V]
	for _, sl := range held {
		if sl.st != fresh {
			create = append(create, sl)
			continue
		}
		c.release(sl, nil)
	}
	return create, nil
}

// release unlocks sl and ends its flight with sl's value (or err).
func (c *call[V]) release(sl *slot[V], err error) {
	if sl.h != nil {
		c.s.unlock(sl.h, sl.key)
		sl.h = nil
	}
	if f := sl.fl; f != nil {
		sl.fl = nil
		if err != nil {
			f.err = err
		} else if sl.absent {
			f.retry = true // nothing to share: waiters ask for the key themselves
		} else if sl.has && c.src.shareable() {
			f.val, f.has = sl.v, true
			if sl.hasEnt && sl.st == fresh {
				e := sl.ent
				f.ent = &e
			}
		}
		c.s.flights.finish(sl.bk, f)
	}
}

// abandon releases the slots' locks and ends their flights without an
// outcome, so that waiters try again themselves.
func (c *call[V]) abandon(slots []*slot[V]) {
	for _, sl := range slots {
		if sl.h != nil {
			c.s.unlock(sl.h, sl.key)
			sl.h = nil
		}
	}
	c.abandonFlights(slots)
}

func (c *call[V]) abandonFlights(slots []*slot[V]) {
	for _, sl := range slots {
		if f := sl.fl; f != nil {
			sl.fl = nil
			f.retry = true
			c.s.flights.finish(sl.bk, f)
		}
	}
}

// createAndStore runs the creator for slots (whose locks, if any, are held),
// stores the values, releases the locks and ends the flights. A panic in the
// creator releases everything, gives waiters an error, and re-panics.
func (c *call[V]) createAndStore(ctx context.Context, slots []*slot[V]) (err error) {
	s := c.s
	for _, sl := range slots {
		if sl.mismatch {
			s.logger.Warn("regioncache: replacing a cached value of another Go type", "key", printable(sl.key))
		}
	}
	done := false
	defer func() {
		if done {
			return
		}
		p := recover()
		perr := &panicError{p}
		for _, sl := range slots {
			c.release(sl, perr)
		}
		s.event(ctx, EventError, slots[0].key, perr, 0)
		if p != nil {
			panic(p)
		}
	}()
	slices.SortFunc(slots, func(a, b *slot[V]) int { return a.idx - b.idx })
	start := time.Now()
	vs, err := c.src.create(ctx, slots)
	took := time.Since(start)
	if err == nil && len(vs) != len(slots) {
		err = fmt.Errorf("region %s: creator returned %d values for %d keys", s.name, len(vs), len(slots))
	}
	if err != nil {
		done = true
		for _, v := range vs {
			c.src.discard(v)
		}
		for _, sl := range slots {
			sl.drop(c.src)
			c.release(sl, err)
		}
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			s.event(ctx, EventError, slots[0].key, err, took)
		}
		return err
	}
	for _, sl := range slots {
		s.creators.record(sl.bk, took)
		if !sl.absent {
			s.event(ctx, EventCreated, sl.key, nil, took)
		}
	}
	// A creator whose lock was lost must not overwrite what the new holder
	// may have stored.
	var keep []int
	for i, sl := range slots {
		if sl.absent {
			continue
		}
		if chk, ok := sl.h.(lock.Checker); ok {
			if err := chk.Check(ctx); err != nil {
				s.lockLost(ctx, sl.key, err)
				continue
			}
		}
		keep = append(keep, i)
	}
	out := vs
	if len(keep) == len(slots) {
		out = c.src.store(ctx, slots, vs)
	} else if len(keep) > 0 {
		ks := make([]*slot[V], len(keep))
		kv := make([]V, len(keep))
		for j, i := range keep {
			ks[j], kv[j] = slots[i], vs[i]
		}
		stored := c.src.store(ctx, ks, kv)
		out = slices.Clone(vs)
		for j, i := range keep {
			out[i] = stored[j]
		}
	}
	done = true
	for i, sl := range slots {
		sl.set(c.src, out[i])
		sl.st = fresh
		c.release(sl, nil)
	}
	return nil
}

// regenerateInBackground hands the held stale slots to background work, which
// owns their locks and flights from now on.
func (c *call[V]) regenerateInBackground(bg *background, slots []*slot[V]) {
	s := c.s
	// The background call gets slots of its own: the caller keeps the stale
	// values it returns.
	own := make([]*slot[V], len(slots))
	for i, sl := range slots {
		own[i] = &slot[V]{key: sl.key, bk: sl.bk, st: stale, early: sl.early, fl: sl.fl, h: sl.h}
		sl.fl, sl.h = nil, nil
	}
	bc := &call[V]{s: s, cfg: c.cfg, src: c.src, slots: own}
	bg.hold()
	s.runAsync(bg, own[0].key, func(ctx context.Context) {
		defer func() {
			if p := recover(); p != nil {
				s.logger.Error("regioncache: background regeneration panicked", "key", printable(own[0].key), "panic", p)
			}
		}()
		// A value chosen for early regeneration is regenerated without a
		// re-read: it was fresh, so a re-read would find it fresh.
		var create, check []*slot[V]
		for _, sl := range own {
			if sl.early {
				create = append(create, sl)
			} else {
				check = append(check, sl)
			}
		}
		var err error
		if len(check) > 0 {
			var more []*slot[V]
			more, err = bc.reread(ctx, check)
			if err != nil {
				bc.abandon(create)
			}
			create = append(create, more...)
		}
		if err == nil && len(create) > 0 {
			err = bc.createAndStore(ctx, create)
		}
		for _, sl := range own {
			sl.drop(bc.src)
		}
		if err != nil {
			s.logger.Warn("regioncache: background regeneration failed", "key", printable(own[0].key), "err", err)
		}
	})
}

// ctxErr wraps a context error of the caller.
func (c *call[V]) ctxErr(ctx context.Context, key string, err error) error {
	if key == "" {
		return fmt.Errorf("region %s: %w", c.s.name, err)
	}
	return fmt.Errorf("region %s: %s: %w", c.s.name, printable(key), err)
}

// outcome counts sl's call once: as a hit, a stale value served or a miss.
func (c *call[V]) outcome(ctx context.Context, sl *slot[V], kind EventKind) {
	if !sl.counted {
		sl.counted = true
		c.s.event(ctx, kind, sl.key, nil, 0)
	}
}

// background is the context of background work started by one call, and the
// region's accounting of it.
type background struct {
	s      *state
	ctx    context.Context
	cancel context.CancelFunc
	refs   int // the call's reference plus one per handed-over job
	mu     sync.Mutex
}

// startBackground returns a context for background work that outlives ctx
// (keeping its values), ends when the region closes or the background
// timeout passes, and is counted by Close. It returns nil once Close began.
func (s *state) startBackground(ctx context.Context) *background {
	if !s.enter() {
		return nil
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(s.closing, cancel)
	if s.bgTimeout > 0 {
		var c2 context.CancelFunc
		bctx, c2 = context.WithTimeout(bctx, s.bgTimeout)
		c1 := cancel
		cancel = func() { c2(); c1() }
	}
	c := cancel
	return &background{s: s, ctx: bctx, cancel: func() { stop(); c() }, refs: 1}
}

func (b *background) hold() {
	b.mu.Lock()
	b.refs++
	b.mu.Unlock()
}

// release drops one reference; the last one ends the context and the
// region's count of the work.
func (b *background) release() {
	b.mu.Lock()
	b.refs--
	last := b.refs == 0
	b.mu.Unlock()
	if last {
		b.cancel()
		b.s.exit()
	}
}

// runAsync runs regenerate through the region's async runner (a goroutine by
// default). The runner must call regenerate exactly once.
func (s *state) runAsync(bg *background, key string, regenerate func(context.Context)) {
	var once sync.Once
	job := func(ctx context.Context) {
		once.Do(func() {
			defer bg.release()
			regenerate(bg.ctx)
		})
	}
	if s.asyncRunner != nil {
		s.asyncRunner(bg.ctx, key, job)
		return
	}
	go job(bg.ctx)
}

// lockLost reports that a creator's lock was lost before its value was
// stored: the value is returned to its caller but not stored, so that it
// cannot overwrite what the lock's new holder stores.
func (s *state) lockLost(ctx context.Context, key string, err error) {
	s.logger.Warn("regioncache: lock lost while creating; the created value is returned but not stored", "region", s.name, "key", printable(key), "err", err)
	s.event(ctx, EventLockLost, key, err, 0)
}

// lockWait takes the key's lock, counting a wait (with its duration) when it
// is contended.
func (s *state) lockWait(ctx context.Context, key, bk string) (lock.Handle, error) {
	h, ok, err := s.lock.TryLock(ctx, bk)
	if err == nil && ok {
		return h, nil
	}
	if err == nil {
		start := time.Now()
		s.stats.add(EventLockWait)
		h, err = s.lock.Lock(ctx, bk)
		s.notify(ctx, EventLockWait, key, nil, time.Since(start))
	}
	if err != nil {
		if ctx.Err() == nil {
			s.event(ctx, EventError, key, err, 0)
		}
		return nil, fmt.Errorf("region %s: lock %s: %w", s.name, printable(key), err)
	}
	return h, nil
}

// lockOrWait takes sl's lock. When the lock is held elsewhere and the locker
// can wait for it to be free without taking it (lock.Waiter), it waits, then
// re-reads: a fresh value ends sl (its flight finished with the value) and
// lockOrWait returns a nil handle; only a value still missing takes the lock.
func (c *call[V]) lockOrWait(ctx context.Context, sl *slot[V]) (lock.Handle, error) {
	s := c.s
	w, ok := s.lock.(lock.Waiter)
	if !ok {
		return s.lockWait(ctx, sl.key, sl.bk)
	}
	for {
		h, ok, err := s.lock.TryLock(ctx, sl.bk)
		if err != nil {
			if ctx.Err() == nil {
				s.event(ctx, EventError, sl.key, err, 0)
			}
			return nil, fmt.Errorf("region %s: lock %s: %w", s.name, printable(sl.key), err)
		}
		if ok {
			return h, nil
		}
		start := time.Now()
		s.stats.add(EventLockWait)
		err = w.WaitUnlocked(ctx, sl.bk)
		s.notify(ctx, EventLockWait, sl.key, nil, time.Since(start))
		if err != nil {
			return nil, fmt.Errorf("region %s: wait for lock %s: %w", s.name, printable(sl.key), err)
		}
		if err := c.src.read(ctx, []*slot[V]{sl}); err != nil {
			return nil, err
		}
		if sl.st == fresh {
			c.release(sl, nil)
			return nil, nil
		}
	}
}
