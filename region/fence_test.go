package region_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

// leaseStore is a shared store with a lease lock whose leases the test can
// expire at will, and a fenced store that checks the lease atomically with
// the write (as a Redis script does). Its handles deliberately do not
// implement lock.Checker: only the fenced store can stop a late writer.
type leaseStore struct {
	*memory.Backend
	mu     sync.Mutex
	holder map[string]*lease // current lease per key
}

type lease struct {
	s        *leaseStore
	key      string
	released bool
}

func (h *lease) Unlock() error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.released {
		return lock.ErrReleased
	}
	h.released = true
	if h.s.holder[h.key] != h {
		return lock.ErrLost
	}
	delete(h.s.holder, h.key)
	return nil
}

func (s *leaseStore) ProcessLocal() bool { return false }
func (s *leaseStore) KeepsValues() bool  { return false }
func (s *leaseStore) Locker() lock.Locker {
	return leaseLocker{s}
}

type leaseLocker struct{ s *leaseStore }

func (l leaseLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.holder[key] != nil {
		return nil, false, nil
	}
	h := &lease{s: l.s, key: key}
	l.s.holder[key] = h
	return h, true, nil
}

func (l leaseLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	h, ok, err := l.TryLock(ctx, key)
	if err != nil || ok {
		return h, err
	}
	return nil, fmt.Errorf("leaseLocker: %s is held (the test never waits)", key)
}

// expire ends key's lease as a lease that ran out would, and lets another
// holder take it.
func (s *leaseStore) expire(key string) {
	s.mu.Lock()
	delete(s.holder, key)
	s.mu.Unlock()
}

func (s *leaseStore) SetFenced(ctx context.Context, key string, e backends.Entry, h lock.Handle) error {
	l, ok := h.(*lease)
	if !ok || l.s != s {
		return fmt.Errorf("not our handle: %w", backends.ErrUnsupported)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holder[key] != l {
		return fmt.Errorf("lease on %q: %w", key, lock.ErrLost)
	}
	return s.Backend.Set(ctx, key, e)
}

// A creator whose lock was lost while it ran never overwrites the value the
// lock's new holder stored: its store is fenced. Its caller still gets the
// created value, and the loss is counted and reported.
func TestFencedStoreAfterLostLock(t *testing.T) {
	ctx := context.Background()
	st := &leaseStore{Backend: memory.New(), holder: map[string]*lease{}}
	var events []region.Event
	var evMu sync.Mutex
	r := region.New(region.WithObserver(func(e region.Event) {
		evMu.Lock()
		events = append(events, e)
		evMu.Unlock()
	}))
	if err := r.ConfigureBackend(st); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
		// The lease runs out while this creator is stalled; another
		// process takes the lock and stores a newer value.
		st.expire("k")
		h, ok, err := st.Locker().TryLock(ctx, "k")
		if err != nil || !ok {
			t.Fatalf("second holder could not lock: %v %v", ok, err)
		}
		if err := region.Set(ctx, r, "k", "newer"); err != nil {
			t.Fatal(err)
		}
		h.Unlock()
		return "late", nil
	})
	if err != nil || v != "late" {
		t.Fatalf("GetOrCreate = %q, %v; want the created value \"late\"", v, err)
	}
	got, err := region.Get[string](ctx, r, "k")
	if err != nil || got != "newer" {
		t.Fatalf("stored value %q, %v; want \"newer\" (a creator that lost its lock overwrote the new holder's value)", got, err)
	}
	if s := r.Stats(); s.LocksLost != 1 || s.WriteErrors != 0 {
		t.Errorf("Stats: LocksLost %d, WriteErrors %d; want 1, 0", s.LocksLost, s.WriteErrors)
	}
	evMu.Lock()
	var lost int
	for _, e := range events {
		if e.Kind == region.EventLockLost {
			lost++
			if !errors.Is(e.Err, lock.ErrLost) || e.Key != "k" {
				t.Errorf("lock-lost event %+v", e)
			}
		}
	}
	evMu.Unlock()
	if lost != 1 {
		t.Errorf("%d lock-lost events, want 1", lost)
	}

	// While the lock is held, the fenced store goes through.
	v, err = region.GetOrCreate(ctx, r, "j", func(ctx context.Context) (string, error) { return "kept", nil })
	if err != nil || v != "kept" {
		t.Fatal(v, err)
	}
	if got, err := region.Get[string](ctx, r, "j"); err != nil || got != "kept" {
		t.Fatalf("held-lock store: %q, %v", got, err)
	}
}
