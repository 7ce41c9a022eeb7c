package memcached_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memcached"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/internal/memcachedtest"
	"github.com/regioncache/regioncache/lock"
)

// prefixFor maps a conformance directory to a unique key prefix.
func prefixFor(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "rct-" + hex.EncodeToString(sum[:8])
}

func harness(srv *memcachedtest.Server, extra backends.Args) conformance.Harness {
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		args := backends.Args{"url": srv.Addr(), "prefix": prefixFor(dir), "lock_timeout": "5s", "socket_timeout": "10s"}
		for k, v := range extra {
			args[k] = v
		}
		if ttl > 0 {
			args["memcached_expire_time"] = ttl
		}
		return backends.Open("memcached", args)
	}
	return conformance.Harness{
		Name: "memcached",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			// memcached keeps whole seconds.
			return open(dir, max(time.Second, ttl.Round(time.Second)))
		},
	}
}

func TestConformance(t *testing.T) {
	srv := memcachedtest.Start(t)
	conformance.Run(t, harness(srv, nil), conformance.LargeValueSize(1<<20))
}

func TestConformanceNoLock(t *testing.T) {
	srv := memcachedtest.Start(t)
	conformance.Run(t, harness(srv, backends.Args{"distributed_lock": false}), conformance.LargeValueSize(1<<20))
}

func open(t *testing.T, srv *memcachedtest.Server, args backends.Args) *memcached.Backend {
	t.Helper()
	a := backends.Args{"url": srv.Addr(), "prefix": strings.ReplaceAll(t.Name(), "/", "-")}
	for k, v := range args {
		a[k] = v
	}
	b, err := memcached.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestArgs(t *testing.T) {
	bad := []backends.Args{
		{"url": "no-port"},
		{"url": 42},
		{"url": []any{"127.0.0.1:1", 3}},
		{"prefix": "has space"},
		{"memcached_expire_time": "1500ms"},
		{"lock_timeout": "100ms"},
		{"socket_timeout": "0s"},
		{"max_idle_conns": 0},
		{"bogus": 1},
	}
	for _, a := range bad {
		_, err := memcached.Open(a)
		if !errors.Is(err, backends.ErrBadArgument) {
			t.Errorf("Open(%v): %v, want ErrBadArgument", a, err)
			continue
		}
		for k := range a {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("Open(%v): %q does not name %s", a, err, k)
			}
		}
	}
	if _, err := memcached.Open(backends.Args{"url": []any{"127.0.0.1:1", "127.0.0.1:2"}, "memcached_expire_time": 60}); err != nil {
		t.Fatal(err)
	}
}

// TestKeys: keys memcached cannot take (too long, spaces, control bytes,
// empty) are stored under their hash and read back; distinct keys stay
// distinct, including a key that spells another's hashed form.
func TestKeys(t *testing.T) {
	srv := memcachedtest.Start(t)
	b := open(t, srv, nil)
	ctx := context.Background()
	long := strings.Repeat("k", 300)
	sum := sha256.Sum256([]byte(long))
	keys := []string{"plain", "", "with space", "ctl\x00\n\r", long, long + "x", "#:" + hex.EncodeToString(sum[:]), "ünïcode"}
	for i, k := range keys {
		if err := b.Set(ctx, k, backends.Entry{Payload: []byte{byte(i)}}); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
	}
	for i, k := range keys {
		e, err := b.Get(ctx, k)
		if err != nil || len(e.Payload) != 1 || e.Payload[0] != byte(i) {
			t.Fatalf("Get(%q) = %v, %v; want [%d]", k, e.Payload, err, i)
		}
	}
}

// TestCorruptIsMiss: items that are not entries, truncated entries and an
// entry of another key are misses, never errors or panics.
func TestCorruptIsMiss(t *testing.T) {
	srv := memcachedtest.Start(t)
	b := open(t, srv, backends.Args{"prefix": "corrupt"})
	ctx := context.Background()
	c := memcache.New(srv.Addr())
	if err := b.Set(ctx, "good", backends.Entry{Payload: []byte("payload"), Tags: []string{"t"}, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get("corrupt:e:good")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{"garbage": []byte("not an entry"), "empty": {}, "magic only": []byte("mc\x01")}
	for n := 1; n < len(it.Value); n += 3 {
		cases["truncated"+string(rune('a'+n%26))] = it.Value[:n]
	}
	cases["other key"] = it.Value // stored under another key
	for name, v := range cases {
		if err := c.Set(&memcache.Item{Key: "corrupt:e:" + name[:min(len(name), 5)] + "x", Value: v}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, name[:min(len(name), 5)]+"x"); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s: Get = %v, want ErrNotFound", name, err)
		}
	}
	got, err := b.GetMulti(ctx, []string{"good", "garbx", "emptx"})
	if err != nil || got[0] == nil || got[1] != nil || got[2] != nil {
		t.Fatalf("GetMulti over corrupt items: %v, %v", got, err)
	}
}

// TestLockLease: a holder that stops renewing (its process stalled or died)
// loses the lock within the lease; its Unlock then reports lock.ErrLost and
// does not release the new holder's lock; release expires the item at once.
func TestLockLease(t *testing.T) {
	srv := memcachedtest.Start(t)
	ctx := context.Background()
	a := open(t, srv, backends.Args{"prefix": "lease", "lock_timeout": "2s"})
	b := open(t, srv, backends.Args{"prefix": "lease", "lock_timeout": "2s"})
	ha, err := a.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Locker().TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("B took a held lock: %v, %v", ok, err)
	}
	// A's renewals keep it held past the lease (2-3s).
	time.Sleep(4 * time.Second)
	if _, ok, err := b.Locker().TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("B took a renewed lock: %v, %v", ok, err)
	}
	if err := ha.Unlock(); err != nil {
		t.Fatal(err)
	}
	hb, ok, err := b.Locker().TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("after release: %v, %v", ok, err)
	}
	// Steal B's lock (as an expired lease taken over would): B's Unlock and
	// Check say lost, and the thief's item stays.
	c := memcache.New(srv.Addr())
	if err := c.Set(&memcache.Item{Key: "lease:l:k", Value: []byte("thief"), Expiration: 30}); err != nil {
		t.Fatal(err)
	}
	if err := hb.(lock.Checker).Check(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Check: %v, want ErrLost", err)
	}
	if err := hb.Unlock(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Unlock: %v, want ErrLost", err)
	}
	if it, err := c.Get("lease:l:k"); err != nil || string(it.Value) != "thief" {
		t.Fatalf("the lost holder's Unlock touched the thief's lock: %v, %v", it, err)
	}
	if err := hb.Unlock(); !errors.Is(err, lock.ErrReleased) {
		t.Fatalf("second Unlock: %v", err)
	}
}

// TestSetFenced: a holder whose lease ran out while it was stalled (its
// renewals stopped) does not overwrite the value of the holder after it, and
// says lock.ErrLost; fencing tokens grow; foreign handles are refused.
func TestSetFenced(t *testing.T) {
	srv := memcachedtest.Start(t)
	ctx := context.Background()
	a := open(t, srv, backends.Args{"prefix": "fence", "lock_timeout": "1s"})
	b := open(t, srv, backends.Args{"prefix": "fence", "lock_timeout": "1s"})
	ha, err := a.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Simulate A stalled past its lease: its lock item disappears.
	c := memcache.New(srv.Addr())
	if err := c.Delete("fence:l:k"); err != nil {
		t.Fatal(err)
	}
	hb, err := b.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if fa, fb := ha.(*memcached.LockHandle).Fence(), hb.(*memcached.LockHandle).Fence(); fb <= fa {
		t.Fatalf("fencing tokens %d then %d: not growing", fa, fb)
	}
	if err := b.SetFenced(ctx, "k", backends.Entry{Payload: []byte("B")}, hb); err != nil {
		t.Fatal(err)
	}
	if err := a.SetFenced(ctx, "k", backends.Entry{Payload: []byte("A")}, ha); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("A's store after losing the lock: %v, want ErrLost", err)
	}
	if e, err := a.Get(ctx, "k"); err != nil || string(e.Payload) != "B" {
		t.Fatalf("stored %q, %v; want B's value", e.Payload, err)
	}
	_ = hb.Unlock()
	// Even when A's lock check passes (it re-took the item's token by
	// chance), a later holder's stored value is never replaced by an
	// earlier one: the fencing token stored with the value decides.
	if err := c.Set(&memcache.Item{Key: "fence:l:k", Value: []byte(tokenOf(t, ha)), Expiration: 30}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetFenced(ctx, "k", backends.Entry{Payload: []byte("A")}, ha); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("A's store over a later holder's value: %v, want ErrLost", err)
	}
	if err := b.SetFenced(ctx, "k", backends.Entry{Payload: []byte("x")}, ha); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("another backend's handle: %v, want ErrUnsupported", err)
	}
	var keyed lock.Keyed
	hk, _ := keyed.Lock(ctx, "k")
	defer hk.Unlock()
	if err := a.SetFenced(ctx, "k", backends.Entry{Payload: []byte("x")}, hk); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("an in-process handle: %v, want ErrUnsupported", err)
	}
}

// tokenOf reads a handle's token through its lock item as stored.
func tokenOf(t *testing.T, h lock.Handle) string {
	t.Helper()
	return memcached.TokenForTest(h)
}

// TestServerDown: with memcached gone, calls fail fast with errors that
// name the backend; once it is back they work again.
func TestServerDown(t *testing.T) {
	srv := memcachedtest.Start(t)
	ctx := context.Background()
	b := open(t, srv, backends.Args{"prefix": "down", "socket_timeout": "200ms"})
	if err := b.Set(ctx, "k", backends.Entry{Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	_, err := b.Get(ctx, "k")
	if err == nil || !strings.Contains(err.Error(), "memcached backend") {
		t.Fatalf("Get with the server down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Get with the server down took %v", d)
	}
	srv.Restart()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("after restart (empty server): %v, want ErrNotFound", err)
	}
}

func TestClosed(t *testing.T) {
	srv := memcachedtest.Start(t)
	b := open(t, srv, nil)
	_ = b.Close()
	if _, err := b.Get(context.Background(), "k"); !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
