package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/lock"
)

func TestKeyedExcludes(t *testing.T) {
	var k lock.Keyed
	ctx := context.Background()
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := k.Lock(ctx, "a")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := max.Load()
				if n <= m || max.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(50 * time.Microsecond)
			inside.Add(-1)
			h.Unlock()
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders at once", max.Load())
	}
	if k.Len() != 0 {
		t.Fatalf("%d keys left in the map after all unlocked", k.Len())
	}
}

func TestKeyedUnrelatedKeysDoNotContend(t *testing.T) {
	var k lock.Keyed
	ctx := context.Background()
	ha, _ := k.Lock(ctx, "a")
	defer ha.Unlock()
	// A holder of "a" may take "b" (a creator loading another key).
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hb, err := k.Lock(tctx, "b")
	if err != nil {
		t.Fatalf("lock on b blocked behind a: %v", err)
	}
	hb.Unlock()
}

func TestKeyedTryLockAndCancel(t *testing.T) {
	var k lock.Keyed
	ctx := context.Background()
	h, ok, err := k.TryLock(ctx, "a")
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok, _ := k.TryLock(ctx, "a"); ok {
		t.Fatal("TryLock took a held lock")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := k.Lock(cctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock on a held key with a cancelled context = %v", err)
	}
	// Ownership passes to another goroutine: release from elsewhere.
	done := make(chan error)
	go func() { done <- h.Unlock() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); !errors.Is(err, lock.ErrReleased) {
		t.Fatalf("second Unlock = %v, want ErrReleased", err)
	}
	if _, ok, _ := k.TryLock(ctx, "a"); !ok {
		t.Fatal("lock not free after release from another goroutine")
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, _, err := k.TryLock(cancelled, "z"); !errors.Is(err, context.Canceled) {
		t.Fatalf("TryLock with a cancelled context = %v", err)
	}
}

func ExampleKeyed() {
	var locks lock.Keyed // the zero value is ready
	h, err := locks.Lock(context.Background(), "user:42")
	if err != nil {
		panic(err)
	}
	// ... regenerate user:42; hand h to another goroutine if needed ...
	_, ok, _ := locks.TryLock(context.Background(), "user:42")
	fmt.Println("second TryLock while held:", ok)
	h.Unlock()
	h2, ok, _ := locks.TryLock(context.Background(), "user:42")
	fmt.Println("TryLock after Unlock:", ok)
	h2.Unlock()
	// Output:
	// second TryLock while held: false
	// TryLock after Unlock: true
}

func TestKeyedIsLocked(t *testing.T) {
	ctx := context.Background()
	var k lock.Keyed
	if held, _ := k.IsLocked(ctx, "a"); held {
		t.Fatal("free key reported held")
	}
	h, err := k.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if held, _ := k.IsLocked(ctx, "a"); !held {
		t.Fatal("held key reported free")
	}
	if held, _ := k.IsLocked(ctx, "b"); held {
		t.Fatal("another key reported held")
	}
	h.Unlock()
	if held, _ := k.IsLocked(ctx, "a"); held {
		t.Fatal("released key reported held")
	}
}
