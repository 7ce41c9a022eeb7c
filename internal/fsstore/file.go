package fsstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/reflink"
)

// A rawfs entry is a metadata entry (KindFile) whose payload is a FileRef:
// the name and identity of an immutable data file in the same shard, named
// <entry name>.<16 random hex>.data. The data file is placed first (written
// to a temporary file and renamed, or the creator's file renamed in), then
// the metadata entry is renamed over the old one: that single rename is the
// commit, so data and metadata change together. The previous data file is
// deleted after the commit; readers that still hold it open keep reading it.
//
// The FileRef records the data file's size, inode, modification and change
// times as they were at the commit. Nothing the cache does changes them
// afterwards, and nobody can set a change time, so a data file rewritten,
// replaced or linked behind the cache's back (even with content of the same
// length) no longer matches: it is a miss, never different bytes.

// FileRef is a rawfs entry's reference to its data file.
type FileRef struct {
	Name    string
	Size    int64
	Ino     uint64
	MtimeNs int64
	CtimeNs int64
}

const fileRefFixed = 32

// EncodeFileRef encodes a data file reference.
func EncodeFileRef(r FileRef) []byte {
	b := make([]byte, 0, fileRefFixed+len(r.Name))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Size))
	b = binary.LittleEndian.AppendUint64(b, r.Ino)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.MtimeNs))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.CtimeNs))
	return append(b, r.Name...)
}

// DecodeFileRef decodes a data file reference. A reference without the data
// file's identity (written by earlier releases) does not decode: such an
// entry cannot be checked, so it is a miss.
func DecodeFileRef(p []byte) (FileRef, bool) {
	if len(p) != fileRefFixed+54 {
		return FileRef{}, false
	}
	r := FileRef{
		Size:    int64(binary.LittleEndian.Uint64(p)),
		Ino:     binary.LittleEndian.Uint64(p[8:]),
		MtimeNs: int64(binary.LittleEndian.Uint64(p[16:])),
		CtimeNs: int64(binary.LittleEndian.Uint64(p[24:])),
		Name:    string(p[fileRefFixed:]),
	}
	return r, r.Size >= 0
}

func (r FileRef) matches(st fileStat) bool {
	return st.size == r.Size && st.ino == r.Ino && st.mtimeNs == r.MtimeNs && st.ctimeNs == r.CtimeNs
}

func dataNameOK(entry, ref string) bool { return classify(ref) == kindData && ref[:32] == entry }

// StoreFile stores the contents of f (from offset 0) under key, renaming f
// into the cache if move is true and f is on the same filesystem (copying
// otherwise).
func (s *Store) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	_, err := s.storeData(ctx, key, e, false, s.placeFile(f, move))
	return err
}

// StoreFileOpen is StoreFile that also returns a read-only file on the bytes
// it stored, opened before the commit: eviction, a Delete or a newer write
// that removes the entry right after cannot take them from the caller. If
// the store fails after f was moved in, f is moved back to its path.
func (s *Store) StoreFileOpen(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) (*os.File, error) {
	return s.storeData(ctx, key, e, true, s.placeFile(f, move))
}

// placement is a data file placed under its final name in a shard: held
// keeps the writer's flock on it until the commit is done.
type placement struct {
	held    *os.File
	closeIt bool     // held is ours to close
	undo    func()   // takes the data file away again
	st      fileStat // the data file after its last rename, if known (ino != 0)
}

func (s *Store) placeFile(f *os.File, move bool) func(sh *dirHandle, dname string) (placement, error) {
	return func(sh *dirHandle, dname string) (placement, error) {
		if move && f.Name() != "" && lockFile(f) {
			if p, ok := s.moveIn(sh, dname, f); ok {
				return p, nil
			}
			// Across filesystems, or not the file f holds: copy.
		}
		return s.writeData(sh, dname, func(out *os.File) error {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if reflink.Clone(out, f) {
				return nil
			}
			_, err := out.ReadFrom(f)
			return err
		})
	}
}

// moveIn renames the creator's file f into sh as dname, if its path still
// names the file f holds, with one link.
func (s *Store) moveIn(sh *dirHandle, dname string, f *os.File) (placement, bool) {
	fst, err := fstatFile(f)
	if err != nil || !fst.regular || fst.nlink > 1 {
		return placement{}, false
	}
	_ = f.Chmod(0o600)
	from := f.Name()
	if err := sh.renameIn(from, dname); err != nil {
		return placement{}, false
	}
	now, err := sh.lstat(dname)
	if err != nil || now.ino != fst.ino || now.dev != fst.dev {
		// The path named another file than the one f holds: give it back.
		_ = sh.renameOut(dname, from)
		return placement{}, false
	}
	if !liveLocks {
		// A fresh modification time, so that no sweep mistakes it for an
		// old leftover where flocks do not mark live writers.
		_ = sh.touch(dname)
		now = fileStat{}
	}
	return placement{held: f, st: now, undo: func() {
		if sh.renameOut(dname, from) != nil {
			_ = sh.remove(dname)
		}
	}}, true
}

// StoreBytes stores p as the data file of key.
func (s *Store) StoreBytes(ctx context.Context, key string, e backends.Entry) error {
	p := e.Payload
	_, err := s.storeData(ctx, key, e, false, func(sh *dirHandle, dname string) (placement, error) {
		return s.writeData(sh, dname, func(out *os.File) error {
			_, err := out.Write(p)
			return err
		})
	})
	return err
}

// writeData fills a new temporary file (holding its flock) and renames it to
// dname.
func (s *Store) writeData(sh *dirHandle, dname string, fill func(out *os.File) error) (placement, error) {
	tmp := tmpName()
	out, err := sh.createExcl(tmp)
	if err != nil {
		return placement{}, err
	}
	err = func() error {
		if !lockFile(out) {
			return fmt.Errorf("temporary file %s taken by a sweeper", tmp)
		}
		if err := s.runHook(); err != nil {
			return err
		}
		if err := fill(out); err != nil {
			return err
		}
		if s.o.Sync {
			if err := out.Sync(); err != nil {
				return err
			}
		}
		return sh.rename(tmp, dname)
	}()
	if err != nil {
		_ = sh.remove(tmp)
		out.Close()
		return placement{}, err
	}
	return placement{held: out, closeIt: true, undo: func() { _ = sh.remove(dname) }}, nil
}

func (s *Store) storeData(ctx context.Context, key string, e backends.Entry, open bool, place func(sh *dirHandle, dname string) (placement, error)) (*os.File, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), true)
	if err != nil {
		return nil, err
	}
	dname := name + "." + randHex() + ".data"
	p, err := place(sh, dname)
	if err != nil {
		return nil, err
	}
	if p.closeIt {
		defer p.held.Close()
	}
	var ro *os.File
	err = func() error {
		// The identity is taken after the last rename (which sets the
		// change time) and never changes again.
		st := p.st
		if st.ino == 0 {
			var err error
			if st, err = fstatFile(p.held); err != nil {
				return err
			}
		}
		if open {
			var rst fileStat
			if ro, rst, err = sh.openRead(dname); err != nil {
				return err
			}
			if rst.ino != st.ino || rst.dev != st.dev {
				return fmt.Errorf("data file %s replaced while stored", dname)
			}
		}
		ref := EncodeFileRef(FileRef{Name: dname, Size: st.size, Ino: st.ino, MtimeNs: st.mtimeNs, CtimeNs: st.ctimeNs})
		msize := entrySize(key, &e, len(ref))
		tmp, err := s.writeTemp(sh, msize, func(f *os.File) error { return writeEntry(f, KindFile, key, &e, ref) })
		if err != nil {
			return err
		}
		return s.commit(ctx, sh, name, tmp, msize, st.size)
	}()
	if err != nil {
		if ro != nil {
			ro.Close()
		}
		p.undo()
		return nil, err
	}
	return ro, nil
}

// OpenFile returns a read-only file on key's data and the entry's metadata
// (Payload nil). A data file that is not exactly the one committed (its
// size, inode, modification or change time differ) is a miss.
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
		ref, ok := DecodeFileRef(e.Payload)
		if !ok || !dataNameOK(name, ref.Name) {
			s.removeEntry(ctx, sh, name, &st)
			return nil, backends.Entry{}, fmt.Errorf("%w: %w", backends.ErrNotFound, ErrCorrupt)
		}
		f, fst, err := sh.openRead(ref.Name)
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
		if !ref.matches(fst) {
			f.Close()
			s.removeEntry(ctx, sh, name, &st)
			return nil, backends.Entry{}, fmt.Errorf("%w: data file %s changed after it was stored", backends.ErrNotFound, ref.Name)
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

// tmpDir returns the open tmp/ directory; with create, a missing one is made
// and anything planted in its place (a link) is replaced.
func (s *Store) tmpDir(create bool) (*dirHandle, error) {
	if d := s.tmp.Load(); d != nil {
		return d, nil
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	if d := s.tmp.Load(); d != nil {
		return d, nil
	}
	d, repaired, err := s.base.openSub(TempDir, create)
	if repaired {
		s.problem(s.dir+"/"+TempDir, fmt.Errorf("not a directory: replaced"))
	}
	if err != nil {
		return nil, err
	}
	s.tmp.Store(d)
	return d, nil
}

// CreateTemp creates a temporary file in the cache directory's tmp/
// subdirectory, on the same filesystem as the entries, so that storing it
// with move is a rename. pattern is as for os.CreateTemp. The file carries
// its creator's flock while it is open; once closed (or its process dead),
// it is swept SweepAge after its last change.
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, backends.ErrClosed
	}
	if strings.ContainsAny(pattern, `/\`) {
		return nil, fmt.Errorf("CreateTemp: pattern %q contains a path separator", pattern)
	}
	d, err := s.tmpDir(true)
	if err != nil {
		return nil, err
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	for try := 0; ; try++ {
		f, err := d.createRW(prefix + randHex() + suffix)
		if err != nil {
			if os.IsExist(err) && try < 10 {
				continue
			}
			return nil, err
		}
		lockFile(f)
		return f, nil
	}
}

// sweepTempDir removes from tmp/ the files no live process holds whose last
// change is older than SweepAge. It never follows a link: a tmp/ that is
// not a directory is left alone.
func (s *Store) sweepTempDir() int64 {
	d, err := s.tmpDir(false)
	if err != nil {
		return 0
	}
	names, err := d.readNames()
	if err != nil {
		return 0
	}
	var freed int64
	for _, n := range names {
		freed += s.removeAbandoned(d, n, nil)
	}
	return freed
}
