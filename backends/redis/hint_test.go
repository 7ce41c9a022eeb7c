package redis_test

import (
	"context"
	"testing"
	"time"

	rcredis "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/lock"
)

var _ lock.HeldHinter = (*rcredis.Lock)(nil)

// TestHeldElsewhere: after a TryLock found the lock held by another locker,
// HeldElsewhere answers true without a Redis command; the release's
// announcement clears it, and so does a dropped subscription. It never
// answers true for a key nobody was found holding.
func TestHeldElsewhere(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "h:", TTL: time.Minute})
	b, c := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "h:", TTL: time.Minute})
	if b.HeldElsewhere("k") {
		t.Fatal("hint before anything was tried")
	}
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The first failed attempt subscribes; the hint is kept once the
	// subscription is live.
	deadline := time.Now().Add(10 * time.Second)
	for !b.HeldElsewhere("k") {
		if _, ok, err := b.TryLock(ctx, "k"); ok || err != nil {
			t.Fatalf("B took a held lock: %v, %v", ok, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the hint never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if !b.HeldElsewhere("k") {
			t.Fatal("hint dropped while the lock is held")
		}
	}
	st, _ := srv.CommandStats()
	if n := st["evalsha"] + st["eval"] + st["get"] + st["pttl"]; n != 0 {
		t.Fatalf("HeldElsewhere made %d Redis calls (%v)", n, st)
	}
	if b.HeldElsewhere("other") {
		t.Fatal("hint for a key nobody holds")
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); b.HeldElsewhere("k"); {
		if time.Now().After(deadline) {
			t.Fatal("the release's announcement never cleared the hint")
		}
		time.Sleep(time.Millisecond)
	}
	// A dropped subscription forgets every hint.
	h, err = a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	for deadline := time.Now().Add(10 * time.Second); !b.HeldElsewhere("k"); {
		_, _, _ = b.TryLock(ctx, "k")
		if time.Now().After(deadline) {
			t.Fatal("the hint never came back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); b.HeldElsewhere("k"); {
		if time.Now().After(deadline) {
			t.Fatal("a dropped subscription did not clear the hint")
		}
		time.Sleep(time.Millisecond)
	}
}
