package lifetime_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/lifetime"
)

type session struct {
	id  string
	buf []byte
}

func openMemory(t *testing.T) *region.Region {
	t.Helper()
	r, err := region.Open("memory", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// bindNew binds key to a new session that is unreachable once it returns;
// collected is closed when the session has been collected.
//
//go:noinline
func bindNew(t *testing.T, r *region.Region, key string, stop bool) <-chan struct{} {
	s := &session{id: key, buf: make([]byte, 64)}
	b, err := lifetime.Set(context.Background(), r, key, "value of "+key, s)
	if err != nil {
		t.Fatal(err)
	}
	if stop {
		b.Stop()
	}
	collected := make(chan struct{})
	runtime.AddCleanup(s, func(ch chan struct{}) { close(ch) }, collected)
	return collected
}

// gcUntil runs the garbage collector until cond holds or the deadline.
func gcUntil(deadline time.Duration, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		runtime.GC()
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestEntryGoneAfterOwnerCollected(t *testing.T) {
	ctx := context.Background()
	r := openMemory(t)
	bindNew(t, r, "bound", false)
	region.Set(ctx, r, "unbound", "stays")
	gone := gcUntil(10*time.Second, func() bool {
		_, err := region.Get[string](ctx, r, "bound")
		return errors.Is(err, region.ErrNotFound)
	})
	if !gone {
		t.Fatal("the bound entry is still there 10 s after its owner became unreachable")
	}
	if v, err := region.Get[string](ctx, r, "unbound"); err != nil || v != "stays" {
		t.Fatalf("an unbound entry went too: %q, %v", v, err)
	}
}

func TestEntryStaysWhileOwnerLives(t *testing.T) {
	ctx := context.Background()
	r := openMemory(t)
	s := &session{id: "alive", buf: make([]byte, 64)}
	if _, err := lifetime.Set(ctx, r, "k", "v", s); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if v, err := region.Get[string](ctx, r, "k"); err != nil || v != "v" {
		t.Fatalf("entry of a live owner: %q, %v", v, err)
	}
	runtime.KeepAlive(s)
}

func TestStoppedBindingKeepsTheEntry(t *testing.T) {
	ctx := context.Background()
	r := openMemory(t)
	collected := bindNew(t, r, "k", true)
	if !gcUntil(10*time.Second, func() bool {
		select {
		case <-collected:
			return true
		default:
			return false
		}
	}) {
		t.Fatal("the owner was never collected")
	}
	time.Sleep(100 * time.Millisecond)
	if v, err := region.Get[string](ctx, r, "k"); err != nil || v != "value of k" {
		t.Fatalf("a stopped binding deleted its entry: %q, %v", v, err)
	}
}

// A region closed before the owner is collected is not an error, and
// nothing panics.
func TestRegionClosedFirst(t *testing.T) {
	r, err := region.Open("memory", nil)
	if err != nil {
		t.Fatal(err)
	}
	collected := bindNew(t, r, "k", false)
	r.Close()
	if !gcUntil(10*time.Second, func() bool {
		select {
		case <-collected:
			return true
		default:
			return false
		}
	}) {
		t.Fatal("the owner was never collected")
	}
	time.Sleep(50 * time.Millisecond)
}

func TestBadInput(t *testing.T) {
	r := openMemory(t)
	s := &session{}
	if _, err := lifetime.Bind[session](r, nil, "k"); err == nil {
		t.Error("nil owner accepted")
	}
	if _, err := lifetime.Bind(nil, s, "k"); err == nil {
		t.Error("nil region accepted")
	}
	if _, err := lifetime.Bind(r, s); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := lifetime.Set[string, session](context.Background(), r, "k", "v", nil); err == nil {
		t.Error("Set with a nil owner accepted")
	}
	var b *lifetime.Binding
	b.Stop() // a nil binding's Stop is a no-op
}
