package redis_test

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rcredis "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/lock"
)

func newRedisLocker(t *testing.T, srv *redistest.Server, opts rcredis.LockOptions) (*rcredis.Lock, *goredis.Client) {
	t.Helper()
	c := srv.Client()
	l := rcredis.NewLock(c, opts)
	t.Cleanup(func() { _ = l.Close() })
	return l, c
}

func TestRedisLockExcludesOtherLockers(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "t:"})
	b, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "t:"})
	other, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "u:"})

	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("TryLock on a held key from another locker: ok=%v err=%v", ok, err)
	}
	if _, ok, err := a.TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("TryLock on a held key from the same locker: ok=%v err=%v", ok, err)
	}
	// Other keys and other prefixes are independent.
	h2, ok, err := b.TryLock(ctx, "k2")
	if !ok || err != nil {
		t.Fatalf("TryLock on a free key: ok=%v err=%v", ok, err)
	}
	h3, ok, err := other.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock with another prefix: ok=%v err=%v", ok, err)
	}
	for _, x := range []lock.Handle{h, h2, h3} {
		if err := x.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Unlock(); !errors.Is(err, lock.ErrReleased) {
		t.Fatalf("second Unlock = %v, want ErrReleased", err)
	}
	h, ok, err = b.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after release: ok=%v err=%v", ok, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestRedisLockMutualExclusion runs a read-modify-write on a Redis counter
// under the lock from several lockers (as several processes would) and many
// goroutines: any overlap loses increments.
func TestRedisLockMutualExclusion(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const lockers, goroutines, rounds = 3, 4, 15
	var wg sync.WaitGroup
	errc := make(chan error, lockers*goroutines)
	for i := 0; i < lockers; i++ {
		l, c := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "mx:", TTL: 5 * time.Second})
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					h, err := l.Lock(ctx, "counter")
					if err != nil {
						errc <- err
						return
					}
					n, err := c.Get(ctx, "n").Int()
					if err != nil && !errors.Is(err, goredis.Nil) {
						errc <- err
					}
					if err := c.Set(ctx, "n", n+1, 0).Err(); err != nil {
						errc <- err
					}
					if err := h.Unlock(); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	n, err := srv.Client().Get(ctx, "n").Int()
	if err != nil || n != lockers*goroutines*rounds {
		t.Fatalf("counter = %d, %v; want %d", n, err, lockers*goroutines*rounds)
	}
}

// TestRedisLockWokenByRelease: a waiter on a lock with a long lease is woken
// by the release's Pub/Sub message, not by its lease-bounded poll (which
// would not come for a minute), and re-checks only a handful of times.
func TestRedisLockWokenByRelease(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "w:", TTL: time.Minute})
	b, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "w:", TTL: time.Minute})
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		// The deadline only detects a lost wake-up; it is far below the
		// minute the fallback poll would take.
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		h, err := b.Lock(wctx, "k")
		if err == nil {
			err = h.Unlock()
		}
		got <- err
	}()
	// Let the waiter subscribe and block, then release.
	waitForCalls(t, srv, "evalsha", 2)
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	st, _ := srv.CommandStats()
	// Acquisition attempts (the SET NX inside the script): the waiter's
	// first try, its re-check once subscribed, its try after the wake-up.
	if n := st["set"]; n != 3 {
		t.Fatalf("%d acquisition attempts for one hand-over, want 3 (stats %v)", n, st)
	}
	if st["publish"] != 2 {
		t.Fatalf("%d releases published, want 2 (stats %v)", st["publish"], st)
	}
}

func waitForCalls(t *testing.T, srv *redistest.Server, cmd string, n int64) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		st, err := srv.CommandStats()
		if err != nil {
			t.Fatal(err)
		}
		if st[cmd] >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never saw %d %s calls", n, cmd)
}

func TestRedisLockContextCancel(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "c:", TTL: time.Minute})
	b, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "c:", TTL: time.Minute})
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := b.Lock(cctx, "k")
		done <- err
	}()
	waitForCalls(t, srv, "evalsha", 3) // holder's acquire + the waiter's two tries
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after cancel = %v, want context.Canceled", err)
	}
	// A cancelled context fails before waiting at all.
	if _, err := b.Lock(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context = %v", err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	// The cancelled waiter left nothing behind in b.
	h, ok, err := b.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after cancelled wait: %v %v", ok, err)
	}
	_ = h.Unlock()
}

func TestRedisLockRenewsLease(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, c := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "r:", TTL: 2 * time.Second, RenewInterval: 100 * time.Millisecond})
	b, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "r:", TTL: 2 * time.Second})
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Hold for more than two leases; renewals must keep the lock ours.
	waitForCalls(t, srv, "pexpire", 5)
	time.Sleep(4 * time.Second)
	if _, ok, err := b.TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("lock taken by another locker while renewed: ok=%v err=%v", ok, err)
	}
	if pttl := c.PTTL(ctx, "r:k").Val(); pttl <= 0 {
		t.Fatalf("lock key has PTTL %v", pttl)
	}
	if err := h.Unlock(); err != nil {
		t.Fatalf("Unlock of a renewed lock: %v", err)
	}
}

func TestRedisLockLost(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, c := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "l:", TTL: 3 * time.Second, RenewInterval: 50 * time.Millisecond})

	// Taken over by another token (as after the lease ran out and someone
	// else locked): Unlock reports ErrLost and leaves the other's key alone.
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "l:k", "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	<-h.(*rcredis.LockHandle).Lost() // the next renewal notices
	if err := h.Unlock(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Unlock of a taken-over lock = %v, want ErrLost", err)
	}
	if v := c.Get(ctx, "l:k").Val(); v != "someone-else" {
		t.Fatalf("Unlock of a lost lock changed the new holder's key to %q", v)
	}
	c.Del(ctx, "l:k")

	// Expired (deleted) under a holder that has not renewed yet.
	a2, c2 := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "l2:", TTL: time.Minute})
	h, err = a2.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	c2.Del(ctx, "l2:k")
	if err := h.Unlock(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Unlock of an expired lock = %v, want ErrLost", err)
	}
	// The in-process part was released anyway.
	h, ok, err := a2.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after lost Unlock: %v %v", ok, err)
	}
	_ = h.Unlock()
}

// lockHolderKind is the worker of TestRedisLockHolderKilled: it takes the
// lock and holds (and renews) it until it is killed.
const lockHolderKind = "lock-holder"

type lockHolderSpec struct {
	Addr string
	TTL  time.Duration
}

func lockHolderWorker(spec lockHolderSpec) (any, error) {
	c := goredis.NewClient(&goredis.Options{Addr: spec.Addr})
	l := rcredis.NewLock(c, rcredis.LockOptions{Prefix: "kill:", TTL: spec.TTL})
	if _, err := l.Lock(context.Background(), "k"); err != nil {
		return nil, err
	}
	stampedetest.Say("locked")
	// Hold until killed; end if the parent goes away (stdin closes) so that
	// no holder outlives a crashed test.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil, nil
}

// TestRedisLockHolderKilled: a holder killed with SIGKILL publishes nothing
// and stops renewing; waiters in other "processes" (lockers with their own
// clients) get the key within the lease, and meanwhile poll Redis only at
// the pace of the lease, not in a tight loop.
func TestRedisLockHolderKilled(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = 2 * time.Second
	w := stampedetest.Launch(t, lockHolderKind, lockHolderSpec{Addr: srv.Addr(), TTL: ttl})
	w.Expect(t, "locked")
	w.Kill()
	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const lockers, goroutines = 3, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	acquired := 0
	for i := 0; i < lockers; i++ {
		l, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "kill:", TTL: ttl})
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := l.Lock(ctx, "k")
				if err != nil {
					t.Errorf("Lock after the holder died: %v", err)
					return
				}
				mu.Lock()
				acquired++
				mu.Unlock()
				if err := h.Unlock(); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if acquired != lockers*goroutines {
		t.Fatalf("%d of %d callers got the lock", acquired, lockers*goroutines)
	}
	st, err := srv.CommandStats()
	if err != nil {
		t.Fatal(err)
	}
	// Poll policy: each locker has one Redis waiter per key, which tries
	// once, re-checks once after subscribing, then sleeps until the lease
	// runs out (<= ttl) or a release wakes it. Each of the n acquisitions
	// costs one successful attempt, and each of the n releases wakes at most
	// the other lockers-1 waiters for one losing attempt each. The dead
	// holder's lease adds at most 2 attempts per locker before it runs out
	// (plus one in case the lease ends in the middle of a sleep).
	// A waiter polling every millisecond would make thousands.
	attempts := st["set"] // the SET NX inside the acquire script
	n := int64(lockers * goroutines)
	bound := n + n*(lockers-1) + lockers*3
	t.Logf("acquisition attempts: %d (bound %d); stats %v", attempts, bound, st)
	if attempts > bound {
		t.Fatalf("%d acquisition attempts while waiting out a dead holder, want <= %d: waiters poll too often", attempts, bound)
	}
	if attempts < n { // sanity: the counter really counts
		t.Fatalf("only %d attempts for %d acquisitions", attempts, n)
	}
	var total int64
	for name, calls := range st {
		if name != "info" && name != "config|resetstat" {
			total += calls
		}
	}
	// Per attempt at most set+pttl and a script call (or two on NOSCRIPT);
	// per release get+del+publish and a script call; plus connection set-up.
	if limit := 4*bound + 4*n + 10*lockers; total > limit {
		t.Fatalf("%d commands in all, want <= %d (stats %v)", total, limit, st)
	}
}
