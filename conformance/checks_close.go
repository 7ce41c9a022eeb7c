package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/regioncache/regioncache/backends"
)

func checkCloseIdempotent(ctx context.Context, e *env) error {
	// A never-used instance and a used one.
	for _, use := range []bool{false, true} {
		b, err := e.open(ctx)
		if err != nil {
			return err
		}
		if use {
			if err := set(ctx, b, "k", newEntry([]byte("v"), 1)); err != nil {
				return err
			}
		}
		for i := 1; i <= 3; i++ {
			if err := b.Close(); err != nil {
				return fmt.Errorf("Close call %d (used: %v) returned %q, want nil: Close is idempotent", i, use, err)
			}
		}
	}
	return nil
}

func wantClosed(op string, err error) error {
	if err == nil {
		return fmt.Errorf("%s after Close succeeded, want an error wrapping backends.ErrClosed", op)
	}
	if !errors.Is(err, backends.ErrClosed) {
		return fmt.Errorf("%s after Close returned %q, want an error wrapping backends.ErrClosed", op, err)
	}
	return nil
}

func checkClosedMethods(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	if err := set(ctx, b, "k", newEntry([]byte("v"), 1)); err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	_, gerr := b.Get(ctx, "k")
	errs := []error{
		wantClosed("Get of a stored key", gerr),
		wantClosed("Set", b.Set(ctx, "k", newEntry([]byte("w"), 1))),
		wantClosed("Delete", b.Delete(ctx, "k")),
	}
	_, gerr = b.Get(ctx, "absent")
	errs = append(errs, wantClosed("Get of an absent key", gerr))
	if m, ok := b.(backends.MultiGetter); ok && e.has(FeatMulti) {
		_, err := m.GetMulti(ctx, []string{"k"})
		errs = append(errs, wantClosed("GetMulti", err))
	}
	if m, ok := b.(backends.MultiSetter); ok && e.has(FeatMulti) {
		errs = append(errs, wantClosed("SetMulti", m.SetMulti(ctx, []string{"k"}, []backends.Entry{newEntry(nil, 1)})))
	}
	if m, ok := b.(backends.MultiDeleter); ok && e.has(FeatMulti) {
		errs = append(errs, wantClosed("DeleteMulti", m.DeleteMulti(ctx, []string{"k"})))
	}
	if t, ok := b.(backends.TagEvicter); ok && e.has(FeatTags) {
		_, err := t.EvictTag(ctx, "t")
		errs = append(errs, wantClosed("EvictTag", err))
	}
	if l, ok := b.(backends.Lister); ok && e.has(FeatList) {
		errs = append(errs, wantClosed("List", l.List(ctx, func(backends.EntryInfo) error { return nil })))
	}
	if s, ok := b.(backends.StatReporter); ok && e.has(FeatStats) {
		_, err := s.StorageStats(ctx)
		errs = append(errs, wantClosed("StorageStats", err))
	}
	if fs, ok := b.(backends.FileStore); ok && e.has(FeatFiles) {
		f, _, err := fs.OpenFile(ctx, "k")
		if f != nil {
			f.Close()
		}
		errs = append(errs, wantClosed("OpenFile", err))
		tmp, terr := os.CreateTemp(e.scratch, "suite-*")
		if terr != nil {
			return terr
		}
		errs = append(errs, wantClosed("StoreFile", fs.StoreFile(ctx, "k", tmp, newEntry(nil, 1), false)))
		tmp.Close()
	}
	if err := b.Close(); err != nil {
		errs = append(errs, fmt.Errorf("a second Close returned %q, want nil", err))
	}
	return errors.Join(errs...)
}
