package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// okOrCtx accepts success or an error wrapping the context's error.
func okOrCtx(op string, err error) error {
	if err == nil || isCtxErr(err) {
		return nil
	}
	return fmt.Errorf("%s with an ended context returned %q: want success or an error wrapping context.Canceled or context.DeadlineExceeded", op, err)
}

// checkCancelled calls every operation with a context that has already ended,
// once cancelled and once past its deadline. The suite demands that each
// either does its work correctly, as with a live context, or returns the
// context's error (wrapped) having done nothing wrong: an operation that
// cannot block has no reason to look at its context, and one that can must
// stop. Any other error, a wrong answer (a stored key reported as a miss) or
// an instance left unusable afterwards fails the check.
func checkCancelled(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	present := newEntry([]byte("present"), 1, "t")
	if err := set(ctx, b, "present", present); err != nil {
		return err
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for _, dead := range []struct {
		name string
		ctx  context.Context
	}{{"cancelled", cancelled}, {"past-deadline", expired}} {
		if err := e.cancelledOps(ctx, dead.ctx, b, present); err != nil {
			return fmt.Errorf("%s context: %w", dead.name, err)
		}
	}
	// The instance still works with a live context.
	after := newEntry([]byte("after"), 2)
	if err := set(ctx, b, "after", after); err != nil {
		return fmt.Errorf("after operations with ended contexts: %w", err)
	}
	if err := e.expect(ctx, b, "after", after); err != nil {
		return fmt.Errorf("after operations with ended contexts: %w", err)
	}
	return nil
}

func (e *env) cancelledOps(live, dead context.Context, b backends.Backend, present backends.Entry) error {
	got, err := b.Get(dead, "present")
	if err == nil && !e.discards() {
		if err := e.sameEntry(got, present); err != nil {
			return fmt.Errorf("Get of a stored key succeeded with a wrong entry: %w", err)
		}
	} else if errors.Is(err, backends.ErrNotFound) && !e.discards() {
		return errors.New("Get of a stored key reported a miss: want the entry or the context's error")
	} else if err != nil && !(e.discards() && errors.Is(err, backends.ErrNotFound)) {
		if err := okOrCtx("Get", err); err != nil {
			return err
		}
	}
	if _, err := b.Get(dead, "absent"); err != nil && !errors.Is(err, backends.ErrNotFound) {
		if err := okOrCtx("Get of an absent key", err); err != nil {
			return err
		}
	}
	// Set: if it reports success the entry must be there.
	nv := newEntry([]byte("set with an ended context"), 3)
	err = b.Set(dead, "new", nv)
	if err := okOrCtx("Set", err); err != nil {
		return err
	}
	if err == nil {
		if err := e.expect(live, b, "new", nv); err != nil {
			return fmt.Errorf("Set with an ended context reported success: %w", err)
		}
	}
	// Delete: if it reports success the entry must be gone.
	err = b.Delete(dead, "new")
	if err := okOrCtx("Delete", err); err != nil {
		return err
	}
	if err == nil {
		if err := expectMiss(live, b, "new", "Delete with an ended context reported success"); err != nil {
			return err
		}
	}
	if err := del(live, b, "new"); err != nil {
		return err
	}
	// Multi operations, through the helpers (native or fallback).
	res, err := backends.GetMulti(dead, b, []string{"present", "absent"})
	if err := okOrCtx("GetMulti", err); err != nil {
		return err
	}
	if err == nil {
		if len(res) != 2 {
			return fmt.Errorf("GetMulti of 2 keys returned %d results", len(res))
		}
		if !e.discards() && (res[0] == nil || res[1] != nil) {
			return errors.New("GetMulti with an ended context reported success with wrong hits and misses")
		}
	}
	err = backends.SetMulti(dead, b, []string{"m"}, []backends.Entry{nv})
	if err := okOrCtx("SetMulti", err); err != nil {
		return err
	}
	if err == nil {
		if err := e.expect(live, b, "m", nv); err != nil {
			return fmt.Errorf("SetMulti with an ended context reported success: %w", err)
		}
	}
	if err := okOrCtx("DeleteMulti", backends.DeleteMulti(dead, b, []string{"m"})); err != nil {
		return err
	}
	if err := del(live, b, "m"); err != nil {
		return err
	}
	// Optional operations the backend declares.
	if t, ok := b.(backends.TagEvicter); ok && e.has(FeatTags) {
		_, err := t.EvictTag(dead, "no-such-tag")
		if err := okOrCtx("EvictTag", err); err != nil {
			return err
		}
	}
	if l, ok := b.(backends.Lister); ok && e.has(FeatList) {
		if err := okOrCtx("List", l.List(dead, func(backends.EntryInfo) error { return nil })); err != nil {
			return err
		}
	}
	if s, ok := b.(backends.StatReporter); ok && e.has(FeatStats) {
		_, err := s.StorageStats(dead)
		if err := okOrCtx("StorageStats", err); err != nil {
			return err
		}
	}
	if fs, ok := b.(backends.FileStore); ok && e.has(FeatFiles) {
		f, _, err := fs.OpenFile(dead, "present")
		if f != nil {
			f.Close()
		}
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			if err := okOrCtx("OpenFile", err); err != nil {
				return err
			}
		}
		tmp, terr := os.CreateTemp(e.scratch, "suite-*")
		if terr != nil {
			return terr
		}
		_, _ = tmp.WriteString("file contents")
		err = fs.StoreFile(dead, "file", tmp, newEntry(nil, 1), false)
		tmp.Close()
		if err := okOrCtx("StoreFile", err); err != nil {
			return err
		}
	}
	if l := backends.LockerOf(b); l != nil {
		h, err := l.Lock(dead, "lock-key")
		if err := okOrCtx("Lock of a free key", err); err != nil {
			return err
		}
		if err == nil {
			if h == nil {
				return errors.New("lock: Lock returned a nil handle and no error")
			}
			if err := h.Unlock(); err != nil && !(e.h.LockEndsWithContext && errors.Is(err, lock.ErrLost)) {
				return fmt.Errorf("releasing a lock taken with an ended context: %w", err)
			}
		}
		h, ok, err := l.TryLock(dead, "lock-key")
		if err := okOrCtx("TryLock of a free key", err); err != nil {
			return err
		}
		if err == nil && ok {
			if err := h.Unlock(); err != nil && !(e.h.LockEndsWithContext && errors.Is(err, lock.ErrLost)) {
				return fmt.Errorf("releasing a lock taken with an ended context: %w", err)
			}
		}
	}
	return nil
}

// checkCapabilities verifies that what a backend declares (its optional
// interfaces and their run-time answers) is stable: a second instance opened
// the same way declares the same, so that a region does not lock or share
// differently depending on which instance it got.
func checkCapabilities(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	caps := featuresOf(ctx, b)
	if caps&FeatDiscards != 0 && caps&FeatKeepsValues != 0 {
		return errors.New("backend declares both Discarder and ValueKeeper: a store that keeps nothing keeps no values")
	}
	if caps != e.caps {
		return fmt.Errorf("two instances declared different optional interfaces: %s and %s", e.caps, caps)
	}
	return nil
}
