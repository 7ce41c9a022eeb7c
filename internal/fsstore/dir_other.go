//go:build !linux

package fsstore

import (
	"errors"
	"io"
	"os"
	"time"
)

// dirHandle is an open shard directory, as an os.Root: no operation can reach
// outside it, even through a symbolic link planted in it.
type dirHandle struct {
	root *os.Root
	path string
}

func openDir(path string) (*dirHandle, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &dirHandle{root: r, path: path}, nil
}

func (d *dirHandle) close() error { return d.root.Close() }

func statOfInfo(fi os.FileInfo) fileStat {
	return fileStat{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano(), regular: fi.Mode().IsRegular(), dir: fi.IsDir()}
}

func (d *dirHandle) readFile(name string, touchOlder time.Duration, check func([]byte) error) ([]byte, fileStat, error) {
	f, fs, err := d.openRead(name)
	if err != nil {
		return nil, fs, err
	}
	defer f.Close()
	var hdr [headerSize]byte
	h := hdr[:min(int64(headerSize), fs.size)]
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fs, err
	}
	if err := preflight(h, fs.size); err != nil {
		return nil, fs, err
	}
	buf := make([]byte, fs.size)
	copy(buf, h)
	if _, err := io.ReadFull(f, buf[len(h):]); err != nil {
		return nil, fs, err
	}
	if check != nil {
		if err := check(buf); err != nil {
			return buf, fs, err
		}
	}
	if touchOlder > 0 && time.Now().UnixNano()-fs.mtimeNs > int64(touchOlder) {
		_ = d.touch(name)
	}
	return buf, fs, nil
}

func (d *dirHandle) openRead(name string) (*os.File, fileStat, error) {
	var fs fileStat
	li, err := d.root.Lstat(name)
	if err != nil {
		return nil, fs, err
	}
	if !li.Mode().IsRegular() {
		return nil, statOfInfo(li), &os.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fs, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fs, err
	}
	fs = statOfInfo(fi)
	if !fs.regular {
		f.Close()
		return nil, fs, &os.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	return f, fs, nil
}

func (d *dirHandle) touch(name string) error {
	now := time.Now()
	return d.root.Chtimes(name, now, now)
}

func (d *dirHandle) createExcl(name string) (*os.File, error) {
	return d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

func (d *dirHandle) createRW(name string) (*os.File, error) {
	return d.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

func (d *dirHandle) rename(from, to string) error { return d.root.Rename(from, to) }

func (d *dirHandle) remove(name string) error { return d.root.Remove(name) }

func (d *dirHandle) lstat(name string) (fileStat, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return fileStat{}, err
	}
	return statOfInfo(fi), nil
}

func (d *dirHandle) readNames() ([]string, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

func isNotRegular(err error) bool { return errors.Is(err, errNotRegular) }

func (d *dirHandle) syncDir() error { return nil }

// openSub opens the subdirectory name of d, inside d's root. With create, a
// missing subdirectory is made and anything else planted at name is removed
// and replaced by a directory; repaired reports that.
func (d *dirHandle) openSub(name string, create bool) (sub *dirHandle, repaired bool, err error) {
	p := d.path + string(os.PathSeparator) + name
	for attempt := 0; ; attempt++ {
		fi, err := d.root.Lstat(name)
		if err == nil && fi.IsDir() {
			r, err := d.root.OpenRoot(name)
			if err != nil {
				return nil, repaired, err
			}
			return &dirHandle{root: r, path: p}, repaired, nil
		}
		if !create || attempt > 2 {
			if err == nil {
				err = &os.PathError{Op: "open", Path: p, Err: errNotRegular}
			}
			return nil, repaired, err
		}
		if err == nil {
			if rerr := d.root.Remove(name); rerr != nil {
				return nil, repaired, rerr
			}
			repaired = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, repaired, err
		}
		if err := d.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, repaired, err
		}
	}
}

// lockFile marks a file as being written. Without Linux's flock semantics
// this is a no-op, and leftovers are recognised by age alone.
func lockFile(f *os.File) bool { return true }

// liveLocks reports whether writers mark their files with flocks.
const liveLocks = false

// removeAbandoned removes name from d if it is a regular file older than age
// and ok (when non-nil) agrees. It returns the bytes removed.
func (d *dirHandle) removeAbandoned(name string, age time.Duration, ok func() bool) (freed int64, young bool) {
	fi, err := d.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	if time.Since(fi.ModTime()) < age {
		return 0, false // maybe being written: no way to tell here
	}
	if ok != nil && !ok() {
		return 0, false
	}
	if d.root.Remove(name) != nil {
		return 0, false
	}
	return fi.Size(), false
}

func (d *dirHandle) renameIn(from, name string) error {
	return os.Rename(from, d.path+string(os.PathSeparator)+name)
}

func (d *dirHandle) renameOut(name, to string) error {
	return os.Rename(d.path+string(os.PathSeparator)+name, to)
}

func fstatFile(f *os.File) (fileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return statOfInfo(fi), nil
}
