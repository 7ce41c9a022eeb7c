package plugins

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// lockCalls reads the locks test plugin's counters of Lock calls: waiting
// now, most ever waiting at once, total.
func lockCalls(t *testing.T, b *Backend) (waiting, most, total int) {
	t.Helper()
	e, err := b.Get(context.Background(), "\x00lock-calls")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(string(e.Payload), &waiting, &most, &total); err != nil {
		t.Fatal(err)
	}
	return
}

// TestOnePendingLockCallPerKey: 32 goroutines of this process waiting on
// one key (held by another Backend of the plugin) make one pending Lock call
// to the plugin, counted in the plugin; the others wait in the host's keyed
// mutex. Each then gets the lock in turn.
func TestOnePendingLockCallPerKey(t *testing.T) {
	ctx := context.Background()
	holder := openT(t, "locks", nil)
	b := openT(t, "locks", nil)
	h, err := backends.LockerOf(holder).Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	l := backends.LockerOf(b)
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := 0
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := l.Lock(ctx, "k")
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			inside++
			if inside != 1 {
				errs <- fmt.Errorf("%d holders at once", inside)
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			if err := h.Unlock(); err != nil {
				errs <- err
			}
		}()
	}
	// Wait for one call to be pending in the plugin, then give the others
	// time to pile up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if w, _, _ := lockCalls(t, b); w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Lock call reached the plugin")
		}
	}
	time.Sleep(300 * time.Millisecond)
	waiting, most, _ := lockCalls(t, b)
	if waiting != 1 || most != 1 {
		t.Errorf("with %d goroutines waiting: %d Lock calls pending in the plugin (at most %d), want 1", n, waiting, most)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, most, total := lockCalls(t, b)
	if most != 1 || total != n+1 {
		t.Errorf("Lock calls: at most %d pending, %d in all; want 1 and %d", most, total, n+1)
	}
	// TryLock of a key held in this process answers without a call.
	h2, err := l.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.TryLock(ctx, "k"); ok || err != nil {
		t.Errorf("TryLock of a held key = %v, %v", ok, err)
	}
	h2.Unlock()
}
