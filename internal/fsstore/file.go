package fsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// A rawfs entry is a metadata entry (KindFile) whose payload is a FileRef:
// the size and name of an immutable data file in the same shard, named
// <entry name>.<16 random hex>.data. The data file is placed first (renamed
// or copied in), then the metadata entry is renamed over the old one: that
// single rename is the commit, so data and metadata change together. The
// previous data file is deleted after the commit; readers that still hold it
// open keep reading it.

// EncodeFileRef encodes a data file reference.
func EncodeFileRef(name string, size int64) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(name)), uint64(size))
	return append(b, name...)
}

// DecodeFileRef decodes a data file reference.
func DecodeFileRef(p []byte) (name string, size int64, ok bool) {
	if len(p) < 8 {
		return "", 0, false
	}
	size = int64(binary.LittleEndian.Uint64(p))
	return string(p[8:]), size, size >= 0
}

func dataNameOK(entry, ref string) bool { return classify(ref) == kindData && ref[:32] == entry }

// StoreFile stores the contents of f (from offset 0) under key, renaming f
// into the cache if move is true and f is on the same filesystem (copying
// otherwise).
func (s *Store) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	return s.storeData(ctx, key, e, func(sh *dirHandle, dname string) (int64, error) {
		if move && f.Name() != "" {
			dst := filepath.Join(sh.path, dname)
			err := os.Rename(f.Name(), dst)
			if err == nil {
				_ = f.Chmod(0o600)
				_ = sh.touch(dname)
				st, err := sh.lstat(dname)
				if err != nil || !st.regular {
					_ = sh.remove(dname)
					return 0, fmt.Errorf("moved file %s: not a regular file", f.Name())
				}
				return st.size, nil
			}
			// Across filesystems (or a file with no usable path): copy.
		}
		return s.writeData(sh, dname, func(out *os.File) error {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if cloneFile(out, f) {
				return nil
			}
			_, err := out.ReadFrom(f)
			return err
		})
	})
}

// StoreBytes stores p as the data file of key.
func (s *Store) StoreBytes(ctx context.Context, key string, e backends.Entry) error {
	p := e.Payload
	return s.storeData(ctx, key, e, func(sh *dirHandle, dname string) (int64, error) {
		return s.writeData(sh, dname, func(out *os.File) error {
			_, err := out.Write(p)
			return err
		})
	})
}

func (s *Store) writeData(sh *dirHandle, dname string, fill func(out *os.File) error) (int64, error) {
	out, err := sh.createExcl(dname)
	if err != nil {
		return 0, err
	}
	err = func() error {
		if err := s.runHook(); err != nil {
			return err
		}
		if err := fill(out); err != nil {
			return err
		}
		if s.o.Sync {
			return out.Sync()
		}
		return nil
	}()
	var size int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = out.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = sh.remove(dname)
		return 0, err
	}
	return size, nil
}

func (s *Store) storeData(ctx context.Context, key string, e backends.Entry, place func(sh *dirHandle, dname string) (int64, error)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), true)
	if err != nil {
		return err
	}
	dname := name + "." + randHex() + ".data"
	size, err := place(sh, dname)
	if err != nil {
		return err
	}
	ref := EncodeFileRef(dname, size)
	tmp, msize, err := s.writeTemp(sh, func(f *os.File) error { return writeEntry(f, KindFile, key, &e, ref) })
	if err == nil {
		err = s.commit(ctx, sh, name, tmp, msize, size)
	}
	if err != nil {
		_ = sh.remove(dname)
	}
	return err
}

// OpenFile returns a read-only file on key's data and the entry's metadata
// (Payload nil).
func (s *Store) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	if err := s.enter(ctx); err != nil {
		return nil, backends.Entry{}, err
	}
	defer s.leave()
	for attempt := 0; ; attempt++ {
		e, sh, name, st, err := s.read(key, KindFile)
		if err != nil {
			return nil, backends.Entry{}, err
		}
		ref, size, ok := DecodeFileRef(e.Payload)
		if !ok || !dataNameOK(name, ref) {
			s.removeEntry(ctx, sh, name, &st)
			return nil, backends.Entry{}, fmt.Errorf("%w: %w", backends.ErrNotFound, ErrCorrupt)
		}
		f, fst, err := sh.openRead(ref)
		if err != nil {
			if isNotExist(err) && attempt < 3 {
				// Replaced (and its old data deleted) between our two
				// opens: read the new entry.
				continue
			}
			if isNotExist(err) || isNotRegular(err) {
				s.removeEntry(ctx, sh, name, &st)
				return nil, backends.Entry{}, fmt.Errorf("%w: data file: %v", backends.ErrNotFound, err)
			}
			return nil, backends.Entry{}, err
		}
		if fst.size != size {
			f.Close()
			s.removeEntry(ctx, sh, name, &st)
			return nil, backends.Entry{}, fmt.Errorf("%w: data file is %d bytes, entry says %d", backends.ErrNotFound, fst.size, size)
		}
		e.Payload = nil
		return f, e, nil
	}
}

// GetBytes reads key's data file into memory.
func (s *Store) GetBytes(ctx context.Context, key string) (backends.Entry, error) {
	f, e, err := s.OpenFile(ctx, key)
	if err != nil {
		return e, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return e, err
	}
	p := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, p); err != nil {
		return e, err
	}
	e.Payload = p
	return e, nil
}

// CreateTemp creates a temporary file in the cache directory's tmp/
// subdirectory, on the same filesystem as the entries, so that storing it
// with move is a rename. Files left there are swept after SweepAge.
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, backends.ErrClosed
	}
	d := filepath.Join(s.dir, TempDir)
	if !s.tmpReady.Load() {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", d)
		}
		s.tmpReady.Store(true)
	}
	return os.CreateTemp(d, pattern)
}

// sweepTempDir removes old files from tmp/.
func (s *Store) sweepTempDir() {
	d := filepath.Join(s.dir, TempDir)
	ents, err := os.ReadDir(d)
	if err != nil {
		return
	}
	for _, de := range ents {
		fi, err := de.Info()
		if err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > s.o.SweepAge {
			_ = os.Remove(filepath.Join(d, de.Name()))
		}
	}
}
