package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/faultproxy"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

func proxyTo(t *testing.T, addr string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestSetFencedAfterStall: a holder whose connection stalls for longer than
// its lease loses the lock to another process, which stores its value; when
// the stall ends, the old holder's fenced store writes nothing and says
// lock.ErrLost. A plain Set in its place would have overwritten the newer
// value (checked too, so the test shows what fencing prevents).
func TestSetFencedAfterStall(t *testing.T) {
	srv := redistest.Start(t)
	p := proxyTo(t, srv.Addr())
	ctx := context.Background()
	args := backends.Args{"prefix": "fence", "lock_timeout": "300ms", "socket_timeout": "5s"}
	a := open(t, srv, merge(args, backends.Args{"url": "redis://" + p.Addr() + "/0"}))
	b := open(t, srv, args)

	ha, err := a.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	p.Stall()
	// B waits for A's lease to run out (A cannot renew through the stall).
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hb, err := b.Locker().Lock(lctx, "k")
	if err != nil {
		t.Fatalf("B never got the lock after A's lease ran out: %v", err)
	}
	newer := backends.Entry{Payload: []byte("from B"), Created: time.Now()}
	if err := b.SetFenced(ctx, "k", newer, hb); err != nil {
		t.Fatalf("B's fenced store while holding the lock: %v", err)
	}
	if err := hb.Unlock(); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	older := backends.Entry{Payload: []byte("from A"), Created: time.Now()}
	err = a.SetFenced(ctx, "k", older, ha)
	if !errors.Is(err, lock.ErrLost) {
		t.Fatalf("A's fenced store after losing the lock: %v, want lock.ErrLost", err)
	}
	if e, err := b.Get(ctx, "k"); err != nil || string(e.Payload) != "from B" {
		t.Fatalf("after A's refused store: %q, %v; want B's value", e.Payload, err)
	}
	if err := ha.Unlock(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("A's Unlock: %v, want lock.ErrLost", err)
	}
	// What fencing prevents: the same late store unfenced overwrites.
	if err := a.Set(ctx, "k", older); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.Get(ctx, "k"); string(e.Payload) != "from A" {
		t.Fatalf("control: plain Set did not overwrite (%q)", e.Payload)
	}
}

// TestSetFencedAfterRestart: a Redis restart that lost the lock key makes
// the holder's fenced store fail with lock.ErrLost, though nobody else took
// the lock.
func TestSetFencedAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, backends.Args{"prefix": "fence-restart", "lock_timeout": "10s"})
	h, err := a.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart(0)
	var serr error
	for i := 0; i < 50; i++ { // the client reconnects on its own
		serr = a.SetFenced(ctx, "k", backends.Entry{Payload: []byte("late")}, h)
		if errors.Is(serr, lock.ErrLost) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(serr, lock.ErrLost) {
		t.Fatalf("fenced store after the lock key was lost: %v, want lock.ErrLost", serr)
	}
	if _, err := a.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("the refused store wrote something: %v", err)
	}
	if err := h.(interface{ Check(context.Context) error }).Check(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Check after the loss: %v, want lock.ErrLost", err)
	}
	_ = h.Unlock()
}

// TestSetFencedForeignHandle: a handle of another locker, or for another
// key, is ErrUnsupported and writes nothing; a held handle writes with tags.
func TestSetFencedForeignHandle(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := open(t, srv, backends.Args{"prefix": "fence-foreign"})
	b := open(t, srv, backends.Args{"prefix": "fence-foreign"})
	hb, err := b.Locker().Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Unlock()
	var keyed lock.Keyed
	hk, _ := keyed.Lock(ctx, "k")
	defer hk.Unlock()
	ha, err := a.Locker().Lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Unlock()
	for name, h := range map[string]lock.Handle{"another backend's handle": hb, "an in-process handle": hk, "a handle for another key": ha} {
		if err := a.SetFenced(ctx, "k", backends.Entry{Payload: []byte("x")}, h); !errors.Is(err, backends.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	if _, err := a.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("a refused store wrote: %v", err)
	}
	if err := b.SetFenced(ctx, "k", backends.Entry{Payload: []byte("v"), Tags: []string{"t1"}}, hb); err != nil {
		t.Fatal(err)
	}
	if n, err := a.EvictTag(ctx, "t1"); err != nil || n != 1 {
		t.Fatalf("EvictTag after a fenced store with a tag: %d, %v", n, err)
	}
	nl := open(t, srv, backends.Args{"prefix": "fence-foreign", "distributed_lock": false})
	if err := nl.SetFenced(ctx, "k", backends.Entry{Payload: []byte("x")}, hb); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("backend without a lock: %v, want ErrUnsupported", err)
	}
}

func merge(a, b backends.Args) backends.Args {
	out := backends.Args{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestStallLongerThanLockTimeout: region A's connection to Redis stalls
// (through the fault proxy) for longer than lock_timeout while its creator
// runs; region B then takes the lock and creates too. Reported: duplicate
// creations (expected: the stall makes A's lock lapse), stores by a creator
// whose lock was lost (must be 0), wrong values (must be 0).
func TestStallLongerThanLockTimeout(t *testing.T) {
	srv := redistest.Start(t)
	p := proxyTo(t, srv.Addr())
	ctx := context.Background()
	args := backends.Args{"prefix": "stall", "lock_timeout": "300ms", "socket_timeout": "10s"}
	ra, err := region.Open("redis", merge(args, backends.Args{"url": "redis://" + p.Addr() + "/0"}), region.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := region.Open("redis", merge(args, backends.Args{"url": srv.URL(0)}), region.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	const rounds = 3
	var creations, wrong, lostStores atomic.Int64
	for round := 0; round < rounds; round++ {
		key := fmt.Sprintf("k%d", round)
		started := make(chan struct{})
		release := make(chan struct{})
		gotA := make(chan string, 1)
		go func() {
			v, err := region.GetOrCreate(ctx, ra, key, func(context.Context) (string, error) {
				creations.Add(1)
				close(started)
				<-release
				return "A-" + key, nil
			})
			if err != nil {
				v = "error: " + err.Error()
			}
			gotA <- v
		}()
		<-started
		p.Stall()
		time.Sleep(900 * time.Millisecond) // three leases
		vb, err := region.GetOrCreate(ctx, rb, key, func(context.Context) (string, error) {
			creations.Add(1)
			return "B-" + key, nil
		})
		if err != nil || vb != "B-"+key {
			t.Fatalf("round %d: B got %q, %v", round, vb, err)
		}
		close(release) // A's creator returns while A is still cut off
		time.Sleep(50 * time.Millisecond)
		p.Resume()
		va := <-gotA
		if va != "A-"+key { // A's caller gets what its creator made
			wrong.Add(1)
			t.Errorf("round %d: A got %q", round, va)
		}
		stored, err := region.Get[string](ctx, rb, key)
		if err != nil {
			t.Fatalf("round %d: read back: %v", round, err)
		}
		if stored != "B-"+key {
			lostStores.Add(1)
			t.Errorf("round %d: stored %q: the creator whose lock was lost overwrote B's value", round, stored)
		}
		for _, r := range []*region.Region{ra, rb} {
			if v, err := region.Get[string](ctx, r, key); err != nil || !strings.HasSuffix(v, key) {
				wrong.Add(1)
				t.Errorf("round %d: read %q, %v", round, v, err)
			}
		}
	}
	st := ra.Stats()
	t.Logf("stall > lock_timeout, %d rounds: creations %d (duplicates %d), stores by a creator whose lock was lost %d, locks lost reported by A %d, wrong values %d",
		rounds, creations.Load(), creations.Load()-rounds, lostStores.Load(), st.LocksLost, wrong.Load())
	if st.LocksLost != rounds {
		t.Errorf("region A reported %d lost locks, want %d", st.LocksLost, rounds)
	}
}
