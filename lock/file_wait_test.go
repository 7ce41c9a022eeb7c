package lock_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// WaitUnlocked waits while another process holds the key, returns once the
// holder is gone, and holds nothing afterwards; its context ends the wait.
func TestFileLockerWaitUnlocked(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	holder := startHolder(t, lockPath, "k")
	l, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var w lock.Waiter = l

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := w.WaitUnlocked(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUnlocked while another process holds k = %v, want DeadlineExceeded", err)
	}
	// An unrelated key is free at once.
	if err := w.WaitUnlocked(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 2)
	for range 2 {
		go func() { done <- w.WaitUnlocked(context.Background(), "k") }()
	}
	select {
	case err := <-done:
		t.Fatalf("WaitUnlocked returned %v while k was held", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("WaitUnlocked did not return after the holder died")
		}
	}
	// The waits took nothing: the key is free for an exclusive lock.
	h, ok, err := l.TryLock(context.Background(), "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after the waits: ok=%v err=%v", ok, err)
	}
	// A wait in the process of the holder waits for it too (it must not
	// turn the holder's exclusive lock into a shared one).
	other, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := l.WaitUnlocked(ctx2, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUnlocked on the holder's own locker = %v, want DeadlineExceeded", err)
	}
	if _, ok, _ := other.TryLock(context.Background(), "k"); ok {
		t.Fatal("after a wait on the holder's locker, another locker could take the held key")
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitUnlocked(context.Background(), "k"); !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("WaitUnlocked after Close = %v, want ErrClosed", err)
	}
}

// IsLocked tells whether another process (or this locker) holds a key,
// without taking it.
func TestFileLockerIsLocked(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	holder := startHolder(t, lockPath, "k")
	l, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var p lock.Prober = l
	ctx := context.Background()
	if held, err := p.IsLocked(ctx, "k"); !held || err != nil {
		t.Fatalf("IsLocked while another process holds k = %v, %v", held, err)
	}
	if held, err := p.IsLocked(ctx, "other"); held || err != nil {
		t.Fatalf("IsLocked of a free key = %v, %v", held, err)
	}
	// Probing took nothing: the free key can be locked, and then probes held.
	h, ok, err := l.TryLock(ctx, "other")
	if !ok || err != nil {
		t.Fatalf("TryLock after a probe: %v %v", ok, err)
	}
	if held, _ := p.IsLocked(ctx, "other"); !held {
		t.Fatal("IsLocked of a key this locker holds = false")
	}
	h.Unlock()
	holder.Process.Kill()
	holder.Wait()
	if held, err := p.IsLocked(ctx, "k"); held || err != nil {
		t.Fatalf("IsLocked after the holder died = %v, %v", held, err)
	}
}
