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
	f *os.File
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
	return &ofdLocker{f: f}, nil
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

func (o *ofdLocker) close() error { return o.f.Close() }
