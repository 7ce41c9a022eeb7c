package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/lock"
)

// LockOptions configure a Redis lock. The zero value gives sensible
// defaults.
type LockOptions struct {
	// Prefix is prepended to every key to form the Redis key of its lock
	// (default "regioncache:lock:"). Lockers that must exclude each other
	// use the same prefix on the same Redis. In Redis Cluster every lock key
	// lives in the slot its full name hashes to; a prefix with a {hash tag}
	// puts them all in one slot.
	Prefix string

	// Channel is the Pub/Sub channel releases are announced on (default
	// Prefix + "released"). Lockers sharing a Prefix must share a Channel.
	Channel string

	// TTL is the lock's lease (default 30s): a holder that dies (or loses
	// Redis) for longer than TTL loses the lock, and the key is free for
	// others at most TTL after the holder's last renewal.
	TTL time.Duration

	// RenewInterval is how often a held lock's lease is extended back to TTL
	// (default TTL/3). It must be shorter than TTL.
	RenewInterval time.Duration
}

// Lock is a [lock.Locker] that excludes every process, on any machine, that
// uses the same Redis and the same prefix. It is meant as an efficiency lock (see
// docs/backends.md): it stops a stampede of regenerations; it does not
// promise mutual exclusion through network partitions or Redis fail-over,
// and it is not Redlock.
//
// A lock is a Redis string set with SET NX PX ttl holding a random token. The
// holder renews the lease with a compare-and-extend script every
// RenewInterval and releases it with a compare-and-delete script that also
// publishes the release. Waiters are woken through one Pub/Sub subscription
// per Redis value (shared by all of its waiters), and besides re-check when
// the current lease would run out, so a holder that crashed (and published
// nothing) delays them by at most TTL, without polling in a tight loop.
//
// Goroutines of one process first queue on an in-process [lock.Keyed] mutex,
// so a process has at most one Redis waiter per key.
//
// Handles returned by Lock and TryLock are *LockHandle. Call Close when done
// with the Redis locker; it does not close the client.
type Lock struct {
	client  goredis.UniversalClient
	prefix  string
	channel string
	ttl     time.Duration
	renew   time.Duration
	local   lock.Keyed
	keyOf   func(key string) string // the Redis key of key's lock (default prefix+key)

	mu      sync.Mutex
	waiters map[string]chan struct{} // Redis key -> closed on its release
	held    map[string]heldMark      // Redis key -> known held by another process
	live    bool                     // the subscription is confirmed and has not failed since
	started bool
	ready   chan struct{} // closed once the subscription is confirmed
	ps      *goredis.PubSub
	closed  bool
	stop    chan struct{} // closed by Close
	subDone chan struct{}
}

// NewLock returns a Redis lock on client. It panics if opts.RenewInterval
// is not shorter than opts.TTL, which is a programming error.
func NewLock(client goredis.UniversalClient, opts LockOptions) *Lock {
	if opts.Prefix == "" {
		opts.Prefix = "regioncache:lock:"
	}
	if opts.Channel == "" {
		opts.Channel = opts.Prefix + "released"
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.RenewInterval <= 0 {
		opts.RenewInterval = opts.TTL / 3
	}
	if opts.RenewInterval >= opts.TTL {
		panic(fmt.Sprintf("redis: LockOptions.RenewInterval %v must be shorter than TTL %v", opts.RenewInterval, opts.TTL))
	}
	return &Lock{
		client:  client,
		prefix:  opts.Prefix,
		channel: opts.Channel,
		ttl:     opts.TTL,
		renew:   opts.RenewInterval,
		waiters: make(map[string]chan struct{}),
		held:    make(map[string]heldMark),
		ready:   make(chan struct{}),
		stop:    make(chan struct{}),
		subDone: make(chan struct{}),
	}
}

// heldMark records that a TryLock found a key's lock held by another
// process. A mark is set (pending) before the attempt is sent, and is only
// trusted if no release of the key was announced since: the release's
// Pub/Sub message deletes the mark, so a mark that survives the attempt
// describes a lock that was held after the attempt was answered.
type heldMark struct {
	until   time.Time // the holder's lease runs out then (zero while pending)
	pending bool
}

// maxHeldMarks bounds the map of held marks; past it, expired marks are
// swept, and if that is not enough no new marks are kept.
const maxHeldMarks = 1 << 16

// rkey returns the Redis key of key's lock.
func (r *Lock) rkey(key string) string {
	if r.keyOf != nil {
		return r.keyOf(key)
	}
	return r.prefix + key
}

// HeldElsewhere reports, without a round trip, whether key's lock is known
// to be held by another process: a TryLock of this locker found it held, no
// release has been announced since on the lock's Pub/Sub channel, that
// subscription has stayed up, and the holder's lease has not run out. A
// release is never missed (the mark is set before the attempt is sent and
// any release announced after that clears it), but the answer lags a
// release by the announcement's delivery time: true means "held, or released
// within the last moments". It is meant for a stale reader choosing to serve
// the stale value rather than try the lock — a process's stale readers then
// ask Redis once, not once each — never for deciding that a key is free.
func (r *Lock) HeldElsewhere(key string) bool {
	return r.knownHeld(r.rkey(key))
}

func (r *Lock) knownHeld(rkey string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.held[rkey]
	if !ok || m.pending {
		return false
	}
	if !r.live || !time.Now().Before(m.until) {
		delete(r.held, rkey)
		return false
	}
	return true
}

// markPending records that an attempt on rkey is about to be sent, and
// reports whether its outcome may be remembered (the subscription is live).
func (r *Lock) markPending(rkey string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.live {
		return false
	}
	if _, ok := r.held[rkey]; !ok && len(r.held) >= maxHeldMarks {
		now := time.Now()
		for k, m := range r.held {
			if !m.pending && !now.Before(m.until) {
				delete(r.held, k)
			}
		}
		if len(r.held) >= maxHeldMarks {
			return false
		}
	}
	r.held[rkey] = heldMark{pending: true}
	return true
}

// settleMark turns rkey's pending mark into a held mark until the holder's
// lease ends, if no release was announced meanwhile; with held == false it
// drops the mark.
func (r *Lock) settleMark(rkey string, held bool, pttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.held[rkey]
	if !ok || !m.pending {
		return // a release (or a reconnect) cleared it: nothing is known
	}
	if !held || !r.live {
		delete(r.held, rkey)
		return
	}
	r.held[rkey] = heldMark{until: time.Now().Add(min(pttl, r.ttl))}
}

// forgetHeld drops what is known about rkey.
func (r *Lock) forgetHeld(rkey string) {
	r.mu.Lock()
	delete(r.held, rkey)
	r.mu.Unlock()
}

// TTL returns the lock's lease duration.
func (r *Lock) TTL() time.Duration { return r.ttl }

// acquireScript takes the lock if it is free and returns -3; otherwise it
// returns the remaining lease in milliseconds (-1: the key has no expiry).
var acquireScript = goredis.NewScript(`
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
return redis.call('pttl', KEYS[1])`)

// releaseScript deletes the lock if it still holds our token and announces
// the release; it returns 1 if it released, 0 if the lock was not ours.
var releaseScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', ARGV[2], KEYS[1])
  return 1
end
return 0`)

// renewScript extends the lease if the lock still holds our token.
var renewScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0`)

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// try attempts to take the Redis lock once. It returns the remaining lease of
// the current holder when the lock is taken by somebody else.
func (r *Lock) try(ctx context.Context, rkey, token string) (bool, time.Duration, error) {
	n, err := acquireScript.Run(ctx, r.client, []string{rkey}, token, r.ttl.Milliseconds()).Int64()
	if err != nil {
		return false, 0, fmt.Errorf("redis lock %s: %w", shortKey(rkey), err)
	}
	if n == -3 {
		return true, 0, nil
	}
	if n < 0 { // no expiry on the key (not ours: somebody set it by hand)
		return false, r.ttl, nil
	}
	return false, time.Duration(n) * time.Millisecond, nil
}

// Lock implements [lock.Locker]. It waits until the lock is free, or ctx ends, or
// Redis fails (the error names the key and wraps go-redis's error).
func (r *Lock) Lock(ctx context.Context, key string) (lock.Handle, error) {
	lh, err := r.local.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	h, err := r.lockRedis(ctx, key)
	if err != nil {
		_ = lh.Unlock()
		return nil, err
	}
	h.local = lh
	return h, nil
}

func (r *Lock) lockRedis(ctx context.Context, key string) (*LockHandle, error) {
	rkey := r.rkey(key)
	r.forgetHeld(rkey)
	token := newToken()
	ok, pttl, err := r.try(ctx, rkey, token)
	if err != nil {
		return nil, err
	}
	if ok {
		return r.newHandle(rkey, token), nil
	}
	r.subscribe()
	subscribed := false
	for {
		// Register for the wake-up before re-checking, and re-check only
		// once the subscription is live, so a release between the check and
		// the wait cannot be missed.
		wake := r.waitChan(rkey)
		if !subscribed {
			subscribed = r.awaitSubscription(ctx, pttl)
			if err := ctx.Err(); err != nil {
				r.dropWait(rkey, wake)
				return nil, err
			}
		}
		ok, pttl, err = r.try(ctx, rkey, token)
		if err != nil {
			r.dropWait(rkey, wake)
			return nil, err
		}
		if ok {
			r.dropWait(rkey, wake)
			return r.newHandle(rkey, token), nil
		}
		// Fallback poll: a holder that died publishes nothing, but its
		// lease runs out after pttl.
		t := time.NewTimer(pttl + time.Millisecond)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.dropWait(rkey, wake)
			return nil, ctx.Err()
		}
		t.Stop()
		r.dropWait(rkey, wake)
	}
}

// WaitUnlocked implements [lock.Waiter]: it returns once nobody holds key's
// lock in Redis (woken by the release's Pub/Sub message, or by polling when
// a holder died and its lease ran out), without taking it.
func (r *Lock) WaitUnlocked(ctx context.Context, key string) error {
	rkey := r.rkey(key)
	r.subscribe()
	subscribed := false
	for {
		wake := r.waitChan(rkey)
		if !subscribed {
			subscribed = r.awaitSubscription(ctx, r.ttl)
			if err := ctx.Err(); err != nil {
				r.dropWait(rkey, wake)
				return err
			}
		}
		pttl, err := r.client.PTTL(ctx, rkey).Result()
		if err != nil {
			r.dropWait(rkey, wake)
			return fmt.Errorf("redis lock %q: wait: %w", shortKey(key), err)
		}
		if pttl == -2 { // no such key: free
			r.dropWait(rkey, wake)
			r.forgetHeld(rkey)
			return nil
		}
		if pttl <= 0 {
			pttl = r.ttl
		}
		t := time.NewTimer(pttl + time.Millisecond)
		select {
		case <-wake:
			// A release was announced after this wait began: the lock was
			// free at that moment, which is all a waiter needs (it re-reads
			// and locks only if the value is still missing). No second
			// round trip to confirm it.
			t.Stop()
			r.dropWait(rkey, wake)
			r.forgetHeld(rkey)
			return nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.dropWait(rkey, wake)
			return ctx.Err()
		}
		t.Stop()
		r.dropWait(rkey, wake)
	}
}

// TryLock implements [lock.Locker]: it takes the lock if nobody in this process nor
// elsewhere holds it. It always asks Redis; when it finds the lock held by
// another process it remembers that for HeldElsewhere.
func (r *Lock) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	lh, ok, err := r.local.TryLock(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	rkey := r.rkey(key)
	remember := r.markPending(rkey)
	token := newToken()
	ok, pttl, err := r.try(ctx, rkey, token)
	if remember {
		r.settleMark(rkey, err == nil && !ok, pttl)
	}
	if err != nil || !ok {
		_ = lh.Unlock()
		if err == nil && !remember {
			r.subscribe() // so that the next attempts can learn from this one
		}
		return nil, false, err
	}
	h := r.newHandle(rkey, token)
	h.local = lh
	return h, true, nil
}

// Close stops the locker's Pub/Sub subscription. Held handles stay valid and
// keep renewing until they are unlocked. The client is not closed.
func (r *Lock) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	ps, started := r.ps, r.started
	for k, ch := range r.waiters {
		close(ch)
		delete(r.waiters, k)
	}
	r.mu.Unlock()
	if started {
		if ps != nil {
			_ = ps.Close()
		}
		<-r.subDone
	}
	return nil
}

func (r *Lock) waitChan(rkey string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.waiters[rkey]
	if ch == nil {
		ch = make(chan struct{})
		if !r.closed {
			r.waiters[rkey] = ch
		}
	}
	return ch
}

func (r *Lock) dropWait(rkey string, ch chan struct{}) {
	r.mu.Lock()
	if r.waiters[rkey] == ch {
		delete(r.waiters, rkey)
	}
	r.mu.Unlock()
}

// wake wakes the waiter of rkey, or every waiter if rkey is "".
func (r *Lock) wake(rkey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rkey == "" {
		clear(r.held)
		for k, ch := range r.waiters {
			close(ch)
			delete(r.waiters, k)
		}
		return
	}
	delete(r.held, rkey)
	if ch := r.waiters[rkey]; ch != nil {
		close(ch)
		delete(r.waiters, rkey)
	}
}

// setLive records whether the subscription is up; going down forgets every
// held mark, since releases may be missed until it is back.
func (r *Lock) setLive(live bool) {
	r.mu.Lock()
	r.live = live
	if !live {
		clear(r.held)
	}
	r.mu.Unlock()
}

// subscribe starts the locker's single subscriber goroutine, once.
func (r *Lock) subscribe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	r.ps = r.client.Subscribe(context.Background())
	go r.receive(r.ps)
}

// awaitSubscription waits (at most max, or until ctx ends) for the
// subscription to be confirmed, and reports whether it is.
func (r *Lock) awaitSubscription(ctx context.Context, max time.Duration) bool {
	select {
	case <-r.ready:
		return true
	default:
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-r.ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// receive is the subscriber loop. go-redis reconnects and resubscribes the
// PubSub after a connection error; each confirmation wakes every waiter,
// since a release may have been missed while disconnected.
func (r *Lock) receive(ps *goredis.PubSub) {
	defer close(r.subDone)
	ctx := context.Background()
	readyClosed := false
	backoff := 50 * time.Millisecond
	subscribed := false
	for {
		if !subscribed {
			if err := ps.Subscribe(ctx, r.channel); err != nil {
				if !r.pause(backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			subscribed = true
		}
		msg, err := ps.ReceiveTimeout(ctx, time.Minute)
		if err != nil {
			if r.isClosed() {
				return
			}
			var te interface{ Timeout() bool }
			if !errors.As(err, &te) || !te.Timeout() {
				r.setLive(false)
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				_ = ps.Ping(ctx) // keep the idle connection checked
				continue
			}
			if !r.pause(backoff) { // Redis unreachable: retry without spinning
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				if !readyClosed {
					close(r.ready)
					readyClosed = true
				} else {
					r.wake("") // resubscribed: a release may have been missed
				}
				r.setLive(true)
			}
		case *goredis.Message:
			r.wake(m.Payload)
		}
	}
}

// pause waits d, and reports false if the locker was closed meanwhile.
func (r *Lock) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !r.isClosed()
	case <-r.stop:
		return false
	}
}

func (r *Lock) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Lock) newHandle(rkey, token string) *LockHandle {
	h := &LockHandle{
		r:     r,
		rkey:  rkey,
		token: token,
		lost:  make(chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go h.renewLoop(time.Now())
	return h
}

// LockHandle is a lock held through a Redis locker. Its lease is renewed in
// the background until Unlock.
type LockHandle struct {
	r     *Lock
	rkey  string
	token string
	local lock.Handle

	lostOnce sync.Once
	lost     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	released atomic.Bool
}

// Lost returns a channel closed when the holder learns that the lock was lost
// (its lease ran out, or another holder replaced it). A creator may watch it
// to give up early; Unlock will then report lock.ErrLost.
func (h *LockHandle) Lost() <-chan struct{} { return h.lost }

func (h *LockHandle) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

func (h *LockHandle) renewLoop(acquired time.Time) {
	defer close(h.done)
	lastOK := acquired
	t := time.NewTicker(h.r.renew)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.r.renew)
		start := time.Now()
		n, err := renewScript.Run(ctx, h.r.client, []string{h.rkey}, h.token, h.r.ttl.Milliseconds()).Int64()
		cancel()
		switch {
		case err == nil && n == 1:
			lastOK = start
		case err == nil:
			h.markLost() // the key expired or belongs to somebody else
			return
		case time.Since(lastOK) >= h.r.ttl:
			h.markLost() // Redis unreachable for a whole lease
			return
		}
	}
}

// Unlock implements [lock.Handle]. It returns an error wrapping [lock.ErrLost] if the
// lease had run out or the key had been taken over (the compare-and-delete
// never touches a key carrying another holder's token), one
// wrapping [lock.ErrReleased] on a second call, and Redis's error if the release
// could not be sent (the lease then expires on its own within TTL). The
// in-process part of the lock is released in every case.
func (h *LockHandle) Unlock() error {
	if h.released.Swap(true) {
		return lock.ErrReleased
	}
	close(h.stop)
	<-h.done
	defer func() {
		if h.local != nil {
			_ = h.local.Unlock()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), h.r.ttl)
	defer cancel()
	n, err := releaseScript.Run(ctx, h.r.client, []string{h.rkey}, h.token, h.r.channel).Int64()
	select {
	case <-h.lost:
		// Lost earlier: whatever release did (nothing, unless the key still
		// carried our token), the protected work was not exclusive.
		return fmt.Errorf("redis lock %s: %w", shortKey(h.rkey), lock.ErrLost)
	default:
	}
	if err != nil {
		return fmt.Errorf("redis lock %s: release: %w", shortKey(h.rkey), err)
	}
	if n != 1 {
		h.markLost()
		return fmt.Errorf("redis lock %s: %w", shortKey(h.rkey), lock.ErrLost)
	}
	return nil
}

// Check implements [lock.Checker]: it returns an error wrapping
// [lock.ErrLost] if the lock is known lost, was released (then
// [lock.ErrReleased] too), or no longer carries this handle's token in Redis
// (one GET), and Redis's error if it cannot tell.
// A backend's SetFenced makes the check and the store one atomic step;
// Check is for stores that cannot.
func (h *LockHandle) Check(ctx context.Context) error {
	select {
	case <-h.lost:
		return fmt.Errorf("redis lock %s: %w", shortKey(h.rkey), lock.ErrLost)
	default:
	}
	if h.released.Load() {
		return fmt.Errorf("redis lock %s: %w: %w", shortKey(h.rkey), lock.ErrLost, lock.ErrReleased)
	}
	v, err := h.r.client.Get(ctx, h.rkey).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("redis lock %s: check: %w", shortKey(h.rkey), err)
	}
	if err != nil || v != h.token {
		h.markLost()
		return fmt.Errorf("redis lock %s: %w", shortKey(h.rkey), lock.ErrLost)
	}
	return nil
}

// IsLocked implements lock.Prober: true when a goroutine of this process or
// any other client holds key's lock (one EXISTS round trip; nothing is
// taken).
func (r *Lock) IsLocked(ctx context.Context, key string) (bool, error) {
	if held, _ := r.local.IsLocked(ctx, key); held {
		return true, nil
	}
	n, err := r.client.Exists(ctx, r.rkey(key)).Result()
	if err != nil {
		return false, fmt.Errorf("redis lock %q: probe: %w", shortKey(key), err)
	}
	return n > 0, nil
}
