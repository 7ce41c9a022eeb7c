package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/regioncache/regioncache/backends"
)

// GetOrCreateFile is GetOrCreate for backends whose values are files (rawfs,
// and plugins that stream), with the same semantics and options. It returns
// a read-only file holding exactly the bytes the creator wrote; the caller
// closes it. create returns a file positioned anywhere (it is read from
// offset 0); GetOrCreateFile closes it after storing it. With MoveFile the
// creator's file may be renamed into the cache rather than copied, if the
// backend allows it too (rawfs does unless its file_movable argument is
// false); without MoveFile it is always copied, so creators may return files
// they keep. Files made with Region.CreateTemp are on the cache's
// filesystem, so moving them is a rename.
//
// A stale file is handed to the callers that are served it; with
// RegenerateInBackground the regeneration runs in the background as for
// GetOrCreate. A backend without file support gives an error wrapping
// backends.ErrUnsupported.
func GetOrCreateFile(ctx context.Context, r *Region, key string, create func(context.Context) (*os.File, error), opts ...CallOption) (*os.File, error) {
	s, err := r.begin()
	if err != nil {
		return nil, err
	}
	defer s.exit()
	if s.files == nil {
		return nil, fmt.Errorf("region %s: GetOrCreateFile: backend %s stores no files: %w", s.name, s.backendName, backends.ErrUnsupported)
	}
	cfg := s.engineCfg(opts)
	src := &fileSource{s: s, cfg: &cfg, create1: create}
	sl := &slot[*os.File]{key: key, bk: s.key(key)}
	slots := []*slot[*os.File]{sl}
	if err := src.read(ctx, slots); err != nil {
		s.event(ctx, EventError, key, err, 0)
		return nil, err
	}
	c := &call[*os.File]{s: s, cfg: &cfg, src: src, slots: slots}
	if err := c.run(ctx); err != nil {
		return nil, err
	}
	return sl.v, nil
}

// fileSource is the engine's source for file values.
type fileSource struct {
	s       *state
	cfg     *callConfig
	create1 func(context.Context) (*os.File, error)
}

func (f *fileSource) read(ctx context.Context, slots []*slot[*os.File]) error {
	for _, sl := range slots {
		sl.drop(f)
		sl.st, sl.early = missing, false
		file, e, err := f.s.files.OpenFile(ctx, sl.bk)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("region %s: open %s: %w", f.s.name, printable(sl.key), err)
		}
		st := f.s.classify(ctx, &e, f.cfg)
		if st == missing {
			file.Close()
			continue
		}
		sl.v, sl.has, sl.st = file, true, st
		if st == due || st == fresh && f.cfg.forceEarly {
			sl.st, sl.early = fresh, f.s.early(sl.bk, &e, f.cfg)
		}
	}
	return nil
}

func (f *fileSource) create(ctx context.Context, slots []*slot[*os.File]) ([]*os.File, error) {
	file, err := f.create1(ctx)
	if err != nil {
		if file != nil {
			file.Close()
		}
		return nil, err
	}
	if file == nil {
		return nil, fmt.Errorf("region %s: GetOrCreateFile: creator returned a nil file and no error", f.s.name)
	}
	return []*os.File{file}, nil
}

func (f *fileSource) store(ctx context.Context, slots []*slot[*os.File], vs []*os.File) []*os.File {
	s := f.s
	out := make([]*os.File, len(vs))
	for i, sl := range slots {
		created := vs[i]
		out[i] = created
		if !shouldCache(f.cfg, created) {
			f.rewind(ctx, sl, created)
			continue
		}
		e := backends.Entry{Created: s.now(), Version: s.version, Tags: f.cfg.tags}
		// Stored and opened in one step where the backend can (nothing can
		// come between the store and the open); a proxy over a backend
		// that cannot declines, and the store falls back on StoreFile.
		if fo, ok := s.files.(backends.FileStoreOpener); ok {
			stored, err := fo.StoreFileOpen(ctx, sl.bk, created, e, f.cfg.move)
			if err != nil && !errors.Is(err, backends.ErrUnsupported) {
				s.logger.Warn("regioncache: cannot store created file", "key", printable(sl.key), "err", err)
				s.event(ctx, EventWriteError, sl.key, err, 0)
				f.rewind(ctx, sl, created)
				continue
			}
			if err == nil {
				created.Close()
				out[i] = stored
				continue
			}
		}
		if err := s.files.StoreFile(ctx, sl.bk, created, e, f.cfg.move); err != nil {
			// The value exists; hand the creator's own file back.
			s.logger.Warn("regioncache: cannot store created file", "key", printable(sl.key), "err", err)
			s.event(ctx, EventWriteError, sl.key, err, 0)
			f.rewind(ctx, sl, created)
			continue
		}
		stored, _, err := s.files.OpenFile(ctx, sl.bk)
		if err != nil {
			// Stored, then removed (evicted) before we could open it: the
			// creator's handle still holds the bytes (after a move, under
			// the inode that was renamed into the cache).
			f.rewind(ctx, sl, created)
			continue
		}
		created.Close()
		out[i] = stored
	}
	return out
}

func (f *fileSource) rewind(ctx context.Context, sl *slot[*os.File], file *os.File) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		f.s.logger.Warn("regioncache: cannot rewind created file", "key", printable(sl.key), "err", err)
		f.s.event(ctx, EventError, sl.key, err, 0)
	}
}

func (f *fileSource) discard(file *os.File) {
	if file != nil {
		file.Close()
	}
}

func (f *fileSource) shareable() bool { return false }

func (f *fileSource) fromEntry(context.Context, *slot[*os.File], *backends.Entry) bool { return false }

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
