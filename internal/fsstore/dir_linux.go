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
		ino:     st.Ino,
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
	}
}

// readFile reads a whole regular file: open, fstat, read, close. If touchOlder
// is positive and the file's mtime is older than that, the file's times are set
// to now (the access mark eviction uses).
func (d *dirHandle) readFile(name string, touchOlder time.Duration) ([]byte, fileStat, error) {
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
	if !fs.regular {
		return nil, fs, pathErr("open", d.path, name, errNotRegular)
	}
	buf := make([]byte, fs.size)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fs, pathErr("read", d.path, name, err)
		}
		if m == 0 {
			return nil, fs, pathErr("read", d.path, name, io.ErrUnexpectedEOF)
		}
		n += m
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
	if !fs.regular {
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
	fd, err := openatRetry(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC)
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
