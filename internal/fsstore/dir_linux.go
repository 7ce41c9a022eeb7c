//go:build linux

package fsstore

import (
	"errors"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dirHandle is an open shard directory. Every operation is relative to its
// descriptor and never follows a symbolic link in the last path component,
// so a link planted in the cache directory cannot redirect a read, write or
// delete outside it.
type dirHandle struct {
	fd   int
	path string
}

func openDir(path string) (*dirHandle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &dirHandle{fd: fd, path: path}, nil
}

func (d *dirHandle) close() error { return unix.Close(d.fd) }

func pathErr(op, dir, name string, err error) error {
	return &os.PathError{Op: op, Path: dir + "/" + name, Err: err}
}

func statOf(st *unix.Stat_t) fileStat {
	return fileStat{
		size:    st.Size,
		mtimeNs: st.Mtim.Nano(),
		ctimeNs: st.Ctim.Nano(),
		dev:     uint64(st.Dev),
		ino:     st.Ino,
		nlink:   uint64(st.Nlink),
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		dir:     st.Mode&unix.S_IFMT == unix.S_IFDIR,
	}
}

// readFile reads a whole entry file: open (O_NOFOLLOW|O_NONBLOCK), fstat,
// which must show a regular file with one link, then the fixed header, which
// must agree with the real size (preflight) before the rest is allocated and
// read. check, if non-nil, validates the contents; only if it passes and
// touchOlder is positive and the file's mtime is older than that are the
// file's times set to now (the access mark eviction uses), through the open
// descriptor.
func (d *dirHandle) readFile(name string, touchOlder time.Duration, check func([]byte) error) ([]byte, fileStat, error) {
	var fs fileStat
	fd, err := openatRetry(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return nil, fs, pathErr("open", d.path, name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fs, pathErr("fstat", d.path, name, err)
	}
	fs = statOf(&st)
	if !fs.regular || fs.nlink != 1 {
		return nil, fs, pathErr("open", d.path, name, errNotRegular)
	}
	var buf []byte
	if fs.size <= smallEntry {
		// Small: one read of the whole file (its size is the real one,
		// from fstat), then the header check.
		buf = make([]byte, fs.size)
		if err := preadFull(fd, buf, 0); err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
		if err := preflight(buf[:min(int64(headerSize), fs.size)], fs.size); err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
	} else {
		var hdr [headerSize]byte
		if err := preadFull(fd, hdr[:], 0); err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
		if err := preflight(hdr[:], fs.size); err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
		if fs.size > 64<<20 && st.Blocks*512 < fs.size/16 {
			// Sparse: the cache never writes holes, so this was planted.
			return nil, fs, pathErr("read", d.path, name, ErrCorrupt)
		}
		buf = make([]byte, fs.size)
		copy(buf, hdr[:])
		if err := preadFull(fd, buf[headerSize:], headerSize); err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
	}
	if check != nil {
		if err := check(buf); err != nil {
			return buf, fs, err
		}
	}
	if touchOlder > 0 {
		now := time.Now()
		if now.UnixNano()-fs.mtimeNs > int64(touchOlder) {
			tv := unix.NsecToTimeval(now.UnixNano())
			_ = unix.Futimes(fd, []unix.Timeval{tv, tv})
		}
	}
	return buf, fs, nil
}

// smallEntry is the size up to which an entry file is read in one call.
const smallEntry = 64 << 10

func preadFull(fd int, buf []byte, off int64) error {
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return io.ErrUnexpectedEOF
		}
		n += m
	}
	return nil
}

func openatRetry(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0o600)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openRead opens a regular file for reading as an *os.File.
func (d *dirHandle) openRead(name string) (*os.File, fileStat, error) {
	var fs fileStat
	fd, err := openatRetry(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return nil, fs, pathErr("open", d.path, name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fs, pathErr("fstat", d.path, name, err)
	}
	fs = statOf(&st)
	if !fs.regular || fs.nlink != 1 {
		unix.Close(fd)
		return nil, fs, pathErr("open", d.path, name, errNotRegular)
	}
	// Clear O_NONBLOCK (it only guarded against opening a planted FIFO).
	_ = unix.SetNonblock(fd, false)
	return os.NewFile(uintptr(fd), d.path+"/"+name), fs, nil
}

// touch sets a file's times to now.
func (d *dirHandle) touch(name string) error {
	now := unix.NsecToTimespec(time.Now().UnixNano())
	return unix.UtimesNanoAt(d.fd, name, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
}

// createExcl creates a new file, failing if the name exists.
func (d *dirHandle) createExcl(name string) (*os.File, error) {
	return d.create(name, unix.O_WRONLY)
}

// createRW creates a new file open for reading and writing, failing if the
// name exists.
func (d *dirHandle) createRW(name string) (*os.File, error) {
	return d.create(name, unix.O_RDWR)
}

func (d *dirHandle) create(name string, mode int) (*os.File, error) {
	fd, err := openatRetry(d.fd, name, mode|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return nil, pathErr("create", d.path, name, err)
	}
	return os.NewFile(uintptr(fd), d.path+"/"+name), nil
}

func (d *dirHandle) rename(from, to string) error {
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return pathErr("rename", d.path, to, err)
	}
	return nil
}

func (d *dirHandle) remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return pathErr("remove", d.path, name, err)
	}
	return nil
}

func (d *dirHandle) lstat(name string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fileStat{}, pathErr("lstat", d.path, name, err)
	}
	return statOf(&st), nil
}

func (d *dirHandle) readNames() ([]string, error) {
	fd, err := openatRetry(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, pathErr("open", d.path, ".", err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// isNotExist reports whether err means the file is absent.
func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist)
}

// isNotRegular reports whether err means the name is not a regular file
// (including a symbolic link refused by O_NOFOLLOW).
func isNotRegular(err error) bool {
	return errors.Is(err, errNotRegular) || errors.Is(err, unix.ELOOP)
}

func (d *dirHandle) syncDir() error { return unix.Fsync(d.fd) }

// openSub opens the subdirectory name of d without following a link. With
// create, a missing subdirectory is made, and anything else planted at name
// (a link, a file, a FIFO) is unlinked — which never touches what a link
// points to — and replaced by a directory; repaired reports that.
func (d *dirHandle) openSub(name string, create bool) (sub *dirHandle, repaired bool, err error) {
	p := d.path + "/" + name
	for attempt := 0; ; attempt++ {
		fd, err := openatRetry(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		if err == nil {
			return &dirHandle{fd: fd, path: p}, repaired, nil
		}
		if !create || attempt > 2 {
			return nil, repaired, &os.PathError{Op: "open", Path: p, Err: err}
		}
		switch err {
		case unix.ENOENT:
		case unix.ELOOP, unix.ENOTDIR:
			if uerr := unix.Unlinkat(d.fd, name, 0); uerr != nil && uerr != unix.ENOENT {
				return nil, repaired, &os.PathError{Op: "open", Path: p, Err: err}
			}
			repaired = true
		default:
			return nil, repaired, &os.PathError{Op: "open", Path: p, Err: err}
		}
		if err := unix.Mkdirat(d.fd, name, 0o700); err != nil && err != unix.EEXIST {
			return nil, repaired, &os.PathError{Op: "mkdir", Path: p, Err: err}
		}
	}
}

// lockFile takes an exclusive flock on f: the mark of a file being written
// by a live process. The kernel drops it when the process dies, so a sweeper
// that can take it knows the writer is gone. A sweeper holds it for a few
// system calls when it looks at a young file, so a writer retries for up to
// 200ms (never blocking: a stopped sweeper cannot hang it).
func lockFile(f *os.File) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for wait := 20 * time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		var lerr error
		if err := sc.Control(func(fd uintptr) {
			for {
				if lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); lerr != unix.EINTR {
					return
				}
			}
		}); err != nil {
			return false
		}
		if lerr == nil {
			return true
		}
		if lerr != unix.EWOULDBLOCK || time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

// removeAbandoned removes name from d if it is a regular file on which no
// live process holds the writer's flock (see lockFile), whose modification
// time is older than age, and if ok (when non-nil) agrees while that flock
// is held. It returns the bytes removed, and young: the file is a dead
// writer's leftover but younger than age. Every file the store writes
// carries its writer's flock from its creation (or, for a creator's file
// moved in, from before the move), so age only covers the moment between a
// file's creation and its flock.
func (d *dirHandle) removeAbandoned(name string, age time.Duration, ok func() bool) (freed int64, young bool) {
	fd, err := openatRetry(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false
	}
	fs := statOf(&st)
	if !fs.regular {
		return 0, false
	}
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false // a live writer holds it
		}
		break
	}
	if time.Now().UnixNano()-fs.mtimeNs < int64(age) {
		return 0, true
	}
	if ok != nil && !ok() {
		return 0, false
	}
	if now, err := d.lstat(name); err != nil || now.ino != fs.ino || now.dev != fs.dev {
		return 0, false
	}
	if d.remove(name) != nil {
		return 0, false
	}
	return fs.size, false
}

// liveLocks reports whether writers mark their files with flocks, so that
// leftovers of dead writers can be told apart from files being written.
const liveLocks = true

// renameIn moves the file at the path from (anywhere) to name in d.
func (d *dirHandle) renameIn(from, name string) error {
	if err := unix.Renameat(unix.AT_FDCWD, from, d.fd, name); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: d.path + "/" + name, Err: err}
	}
	return nil
}

// renameOut moves name in d back to the path to.
func (d *dirHandle) renameOut(name, to string) error {
	if err := unix.Renameat(d.fd, name, unix.AT_FDCWD, to); err != nil {
		return &os.LinkError{Op: "rename", Old: d.path + "/" + name, New: to, Err: err}
	}
	return nil
}

// fstatFile returns the stat of an open file.
func fstatFile(f *os.File) (fileStat, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return fileStat{}, err
	}
	var st unix.Stat_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return fileStat{}, err
	}
	if serr != nil {
		return fileStat{}, serr
	}
	return statOf(&st), nil
}
