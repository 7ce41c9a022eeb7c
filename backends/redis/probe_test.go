package redis_test

import (
	"context"
	"testing"

	rcredis "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/lock"
)

// IsLocked sees another client's lock without taking it.
func TestRedisLockIsLocked(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "p:"})
	b, _ := newRedisLocker(t, srv, rcredis.LockOptions{Prefix: "p:"})
	var p lock.Prober = b
	if held, err := p.IsLocked(ctx, "k"); held || err != nil {
		t.Fatalf("IsLocked of a free key = %v, %v", held, err)
	}
	h, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if held, err := p.IsLocked(ctx, "k"); !held || err != nil {
		t.Fatalf("IsLocked while another client holds k = %v, %v", held, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if held, err := p.IsLocked(ctx, "k"); held || err != nil {
		t.Fatalf("IsLocked after the release = %v, %v", held, err)
	}
	// The probes took nothing.
	h2, ok, err := b.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after probes: %v %v", ok, err)
	}
	h2.Unlock()
}
