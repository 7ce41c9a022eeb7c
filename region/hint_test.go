package region_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

// hintLocker is a keyed lock whose HeldElsewhere says every key is being
// created by another process, and which counts TryLock calls.
type hintLocker struct {
	lock.Keyed
	tries atomic.Int64
}

func (l *hintLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	l.tries.Add(1)
	return l.Keyed.TryLock(ctx, key)
}

func (l *hintLocker) HeldElsewhere(key string) bool { return true }

// A stale reader whose lock says another process holds the key serves the
// stale value at once, without a TryLock (a round trip on a shared lock).
func TestStaleReaderTrustsHeldElsewhereHint(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	l := &hintLocker{}
	r, err := region.Open("memory", nil, region.WithLocker(l), region.WithExpiration(time.Second),
		region.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := region.Set(ctx, r, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(2 * time.Second))
	before := l.tries.Load()
	v, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) {
		t.Error("creator ran although another process holds the lock")
		return "new", nil
	})
	if err != nil || v != "old" {
		t.Fatalf("GetOrCreate = %q, %v; want the stale value", v, err)
	}
	if n := l.tries.Load() - before; n != 0 {
		t.Errorf("%d TryLock calls; want 0 (the hint says the key is held elsewhere)", n)
	}
	if s := r.Stats(); s.StaleServed != 1 {
		t.Errorf("StaleServed = %d, want 1", s.StaleServed)
	}
}
