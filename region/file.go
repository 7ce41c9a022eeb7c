package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// GetOrCreateFile is GetOrCreate for backends whose values are files (rawfs,
// and plugins that stream). It returns a read-only file holding exactly the
// bytes the creator wrote; the caller closes it. create returns a file
// positioned anywhere (it is read from offset 0); GetOrCreateFile closes it
// after storing it. With MoveFile the creator's file may be renamed into
// the cache rather than copied, if the backend allows it too (rawfs does
// unless its file_movable argument is false); without MoveFile it is always
// copied, so creators may return files they keep. Files made with
// Region.CreateTemp are on the cache's filesystem, so moving them is a rename.
//
// The dogpile semantics are those of GetOrCreate. A backend without file
// support gives an error wrapping backends.ErrUnsupported.
func GetOrCreateFile(ctx context.Context, r *Region, key string, create func(context.Context) (*os.File, error), opts ...CallOption) (*os.File, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if s.files == nil {
		return nil, fmt.Errorf("region %s: GetOrCreateFile: backend %s stores no files: %w", s.name, s.backendName, backends.ErrUnsupported)
	}
	cfg := s.callCfg(opts)
	bk := s.key(key)
	f, st, err := s.openFile(ctx, bk, &cfg)
	if err != nil {
		s.event(EventError, key, err)
		return nil, fmt.Errorf("region %s: open %s: %w", s.name, printable(key), err)
	}
	switch {
	case st == fresh:
		s.event(EventHit, key, nil)
		return f, nil
	case st == stale && !cfg.waitFresh:
		h, ok, err := s.lock.TryLock(ctx, bk)
		if err != nil || !ok {
			if err != nil {
				s.event(EventError, key, err)
			}
			s.event(EventStaleServed, key, nil)
			return f, nil
		}
		defer s.unlock(h, key)
		if cfg.background {
			// Files are regenerated in the foreground; the stale file is
			// still handed over at once to the callers that lose the race.
			cfg.background = false
		}
	default:
		if f != nil {
			f.Close()
		}
		f = nil
		s.event(EventMiss, key, nil)
		h, err := s.lockWait(ctx, key, bk)
		if err != nil {
			return nil, err
		}
		defer s.unlock(h, key)
	}
	// We hold the lock. Re-read: another caller may have stored it meanwhile.
	nf, st, err := s.openFile(ctx, bk, &cfg)
	if err == nil && st == fresh {
		if f != nil {
			f.Close()
		}
		s.event(EventHit, key, nil)
		return nf, nil
	}
	if nf != nil {
		nf.Close()
	}
	created, err := create(ctx)
	if err != nil {
		if f != nil {
			f.Close()
		}
		s.event(EventError, key, err)
		return nil, err
	}
	if created == nil {
		if f != nil {
			f.Close()
		}
		err := fmt.Errorf("region %s: GetOrCreateFile: creator returned a nil file and no error", s.name)
		s.event(EventError, key, err)
		return nil, err
	}
	s.event(EventCreated, key, nil)
	if f != nil {
		f.Close()
	}
	if keep, ok := cfg.shouldCache.(func(*os.File) bool); ok && !keep(created) {
		_, err := created.Seek(0, io.SeekStart)
		return created, err
	}
	e := backends.Entry{Created: time.Now(), Version: s.version, Tags: cfg.tags}
	if err := s.files.StoreFile(ctx, bk, created, e, cfg.move); err != nil {
		// The value exists; hand the creator's own file back.
		s.logger.Warn("regioncache: cannot store created file", "key", printable(key), "err", err)
		s.event(EventWriteError, key, err)
		_, serr := created.Seek(0, io.SeekStart)
		return created, serr
	}
	created.Close()
	out, _, err := s.files.OpenFile(ctx, bk)
	if err != nil {
		s.event(EventError, key, err)
		return nil, fmt.Errorf("region %s: open stored file %s: %w", s.name, printable(key), err)
	}
	return out, nil
}

// openFile opens bk's file and classifies it; a missing file is (nil, missing, nil).
// A file that is missing by classification is closed.
func (s *state) openFile(ctx context.Context, bk string, cfg *callConfig) (*os.File, status, error) {
	f, e, err := s.files.OpenFile(ctx, bk)
	if errors.Is(err, backends.ErrNotFound) {
		return nil, missing, nil
	}
	if err != nil {
		return nil, missing, err
	}
	st := s.classify(ctx, &e, cfg.expiration)
	if st == missing {
		f.Close()
		return nil, missing, nil
	}
	return f, st, nil
}

// CreateTemp creates a temporary file for a creator to write a file value
// into. It is on the backend's own filesystem when the backend offers that
// (backends.TempFiler), so that moving it into the cache is a rename.
func (r *Region) CreateTemp(pattern string) (*os.File, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	if t, ok := s.backend.(backends.TempFiler); ok {
		return t.CreateTemp(pattern)
	}
	return os.CreateTemp("", pattern)
}
