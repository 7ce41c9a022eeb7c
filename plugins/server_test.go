package plugins

import (
	"context"
	"errors"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/conformance/brokentest"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// TestAbandonedLockIsReleased covers the race where the host's Lock call is
// cancelled while the grant is on its way: the host then unlocks the handle
// id it chose, and the plugin must release the lock even if the Unlock
// arrives before the grant is recorded.
func TestAbandonedLockIsReleased(t *testing.T) {
	ctx := context.Background()
	s := newServer(func(backends.Args) (backends.Backend, error) {
		return brokentest.WithLock(memory.New(), lock.NewKeyed()), nil
	})
	o, err := s.Open(ctx, &pb.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unlock(ctx, &pb.UnlockRequest{Handle: 42}); err == nil {
		t.Fatal("Unlock of a handle never granted succeeded")
	}
	r, err := s.Lock(ctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k"), Handle: 42})
	if err != nil || !r.Acquired || r.Handle != 42 {
		t.Fatalf("Lock = %v, %v", r, err)
	}
	// The abandoned grant was released at once: the key is free.
	r2, err := s.TryLock(ctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k"), Handle: 43})
	if err != nil || !r2.Acquired {
		t.Fatalf("TryLock after an abandoned grant = %v, %v: the lock leaked", r2, err)
	}
	// While 43 is held, k is taken.
	r3, err := s.TryLock(ctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k"), Handle: 44})
	if err != nil || r3.Acquired {
		t.Fatalf("TryLock of a held key = %v, %v", r3, err)
	}
	if _, err := s.Unlock(ctx, &pb.UnlockRequest{Handle: 43}); err != nil {
		t.Fatal(err)
	}
	// A cancelled Lock call takes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Lock(cctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k"), Handle: 45}); err == nil {
		t.Error("Lock with a cancelled context succeeded")
	}
	r4, err := s.TryLock(ctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k"), Handle: 46})
	if err != nil || !r4.Acquired {
		t.Fatalf("TryLock after a cancelled Lock = %v, %v", r4, err)
	}
	if _, err := s.Close(ctx, &pb.InstanceRequest{Instance: o.Instance}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, &pb.KeyRequest{Instance: o.Instance, Key: []byte("k")}); !errors.Is(fromStatus(ctx, "t", err, false), backends.ErrClosed) {
		t.Errorf("Get on a closed instance = %v, want ErrClosed", err)
	}
}
