//go:build linux

package lock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ofdLocker locks one byte per key of a single lock file with Linux
// open-file-description locks. OFD locks belong to the open file description,
// not to the process or thread, so they can be released from any goroutine and
// two descriptions in one process exclude each other.
type ofdLocker struct {
	f    *os.File
	wait *os.File // a second open file description of the file, for waitFree
}

func openFileLockImpl(path string) (fileLockImpl, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("lock file is not a regular file")
	}
	// The waiters' shared locks go through a description of their own: on
	// the holders' description a shared lock would not wait for an
	// exclusive one of this process, it would replace it.
	wait, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	if wfi, err := wait.Stat(); err != nil || !os.SameFile(fi, wfi) {
		f.Close()
		wait.Close()
		return nil, errors.New("lock file changed while it was opened")
	}
	return &ofdLocker{f: f, wait: wait}, nil
}

func (o *ofdLocker) setlk(typ int16, slot uint64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: int64(slot), Len: 1}
	sc, err := o.f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = sc.Control(func(fd uintptr) {
		for {
			opErr = unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
			if opErr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

func (o *ofdLocker) try(_ string, slot uint64) (bool, error) {
	err := o.setlk(unix.F_WRLCK, slot)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return false, err
}

func (o *ofdLocker) unlock(_ string, slot uint64) error {
	return o.setlk(unix.F_UNLCK, slot)
}

// waitFree implements waitImpl: a blocking shared lock on slot through the
// waiters' description, granted once no exclusive lock is held on it, then
// released. Shared locks of several waiters on one description merge; any of
// them releasing drops the merged lock, which only ends the others' waits
// early by design (they then re-read and try the exclusive lock).
func (o *ofdLocker) waitFree(slot uint64) error {
	sc, err := o.wait.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = sc.Control(func(fd uintptr) {
		lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: int64(slot), Len: 1}
		for {
			opErr = unix.FcntlFlock(fd, unix.F_OFD_SETLKW, &lk)
			if opErr != unix.EINTR {
				break
			}
		}
		if opErr != nil {
			return
		}
		un := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: int64(slot), Len: 1}
		for {
			opErr = unix.FcntlFlock(fd, unix.F_OFD_SETLK, &un)
			if opErr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

func (o *ofdLocker) close() error {
	o.wait.Close()
	return o.f.Close()
}

// probe implements probeImpl with F_OFD_GETLK through the waiters'
// description, which holds no exclusive lock, so that a lock held through
// the holders' description of this process is seen too.
func (o *ofdLocker) probe(slot uint64) (bool, error) {
	sc, err := o.wait.SyscallConn()
	if err != nil {
		return false, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(slot), Len: 1}
	var opErr error
	err = sc.Control(func(fd uintptr) {
		for {
			opErr = unix.FcntlFlock(fd, unix.F_OFD_GETLK, &lk)
			if opErr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return false, err
	}
	if opErr != nil {
		return false, opErr
	}
	return lk.Type == unix.F_WRLCK, nil
}
