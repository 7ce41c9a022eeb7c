//go:build !linux

package lock

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gofrs/flock"
)

// flockLocker is the portable fallback: one lock file per key slot, in the
// directory path + ".d", locked with github.com/gofrs/flock (flock(2) or
// LockFileEx). The per-key files are never deleted (deleting a lock file while
// another process waits on it would split the lock).
type flockLocker struct {
	dir  string
	mu   sync.Mutex
	held map[uint64]*flock.Flock
}

func openFileLockImpl(path string) (fileLockImpl, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	dir := path + ".d"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &flockLocker{dir: dir, held: make(map[uint64]*flock.Flock)}, nil
}

func (l *flockLocker) try(_ string, slot uint64) (bool, error) {
	name := filepath.Join(l.dir, fmt.Sprintf("%02x", slot&0xff), fmt.Sprintf("%016x.lock", slot))
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return false, err
	}
	fl := flock.New(name, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil || !ok {
		fl.Close()
		return false, err
	}
	l.mu.Lock()
	l.held[slot] = fl
	l.mu.Unlock()
	return true, nil
}

func (l *flockLocker) unlock(_ string, slot uint64) error {
	l.mu.Lock()
	fl := l.held[slot]
	delete(l.held, slot)
	l.mu.Unlock()
	if fl == nil {
		return nil
	}
	return fl.Close()
}

func (l *flockLocker) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s, fl := range l.held {
		fl.Close()
		delete(l.held, s)
	}
	return nil
}
