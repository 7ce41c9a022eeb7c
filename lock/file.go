package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned (wrapped) by a FileLocker's methods after Close.
var ErrClosed = errors.New("lock: file locker closed")

// FileLocker is a Locker whose locks exclude every process that opens a
// FileLocker on the same lock file, as well as other goroutines of this
// process.
//
// On Linux each key is one byte of the lock file, at an offset given by a
// 62-bit hash of the key, locked with an open-file-description (OFD) byte
// range lock (fcntl F_OFD_SETLK). The lock file is never written to and must
// never be deleted while the cache is in use; it may be created by any
// process. The kernel releases the locks of a process that dies, at once.
// Elsewhere the portable fallback locks one small lock file per key (named by
// the key's hash, in the directory path + ".d") with github.com/gofrs/flock;
// those files are never deleted either.
//
// Every lock is taken first on an in-process Keyed mutex, so goroutines of one
// process exclude each other and only one goroutine per process polls the
// file lock of a key. Waiting is a poll with exponential back-off (100µs
// doubling to 10ms, jittered), so ctx can cancel a wait. A Handle may be
// released from any goroutine. Distinct keys never contend (unless their 62-bit
// hashes collide).
//
// Two FileLockers on the same path in one process exclude each other like two
// processes do.
type FileLocker struct {
	path  string
	keyed Keyed

	mu     sync.RWMutex // held for reading around every file-lock call; Close takes it for writing
	closed bool
	impl   fileLockImpl
}

// fileLockImpl is the platform part: non-blocking exclusive lock and unlock of
// one key slot.
type fileLockImpl interface {
	try(key string, slot uint64) (held bool, err error)
	unlock(key string, slot uint64) error
	close() error
}

// NewFileLocker opens (creating it with mode 0600 if needed) the lock file at
// path and returns a locker on it. Close releases the file and every lock
// still held through it.
func NewFileLocker(path string) (*FileLocker, error) {
	impl, err := openFileLockImpl(path)
	if err != nil {
		return nil, fmt.Errorf("lock: open lock file %s: %w", path, err)
	}
	return &FileLocker{path: path, impl: impl}, nil
}

// Path returns the lock file's path.
func (l *FileLocker) Path() string { return l.path }

// Slot returns the byte offset used for key: a 62-bit FNV-1a hash of the key.
// (Releases before Core v1 used xxhash: processes of an older release and
// this one do not exclude each other on one cache directory.)
func Slot(key string) uint64 {
	// FNV-1a, 64 bits: standard, stable across releases and platforms, so
	// that every process (and every version) maps a key to the same byte.
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h >> 2
}

// Close releases the lock file. Locks still held are released by the kernel;
// their handles' Unlock then reports ErrLost. Close is idempotent.
func (l *FileLocker) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.impl.close()
}

func (l *FileLocker) tryFile(key string, slot uint64) (bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false, fmt.Errorf("lock %q: %w", key, ErrClosed)
	}
	ok, err := l.impl.try(key, slot)
	if err != nil {
		return false, fmt.Errorf("lock %q in %s: %w", key, l.path, err)
	}
	return ok, nil
}

const (
	minBackoff = 100 * time.Microsecond
	maxBackoff = 10 * time.Millisecond
)

// Lock implements Locker: it waits for the key, polling the file lock with
// back-off, until it is held or ctx ends.
func (l *FileLocker) Lock(ctx context.Context, key string) (Handle, error) {
	kh, err := l.keyed.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	slot := Slot(key)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	wait := minBackoff
	for {
		ok, err := l.tryFile(key, slot)
		if err != nil {
			_ = kh.Unlock()
			return nil, err
		}
		if ok {
			return &fileHandle{l: l, key: key, slot: slot, kh: kh}, nil
		}
		// Jitter ±25% so that pollers in different processes spread out.
		d := wait - wait/4 + rand.N(wait/2+1)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			_ = kh.Unlock()
			return nil, ctx.Err()
		case <-timer.C:
		}
		if wait *= 2; wait > maxBackoff {
			wait = maxBackoff
		}
	}
}

// TryLock implements Locker: it takes the key if neither another goroutine
// of this process nor another process holds it.
func (l *FileLocker) TryLock(ctx context.Context, key string) (Handle, bool, error) {
	kh, ok, err := l.keyed.TryLock(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	slot := Slot(key)
	ok, err = l.tryFile(key, slot)
	if err != nil || !ok {
		_ = kh.Unlock()
		return nil, false, err
	}
	return &fileHandle{l: l, key: key, slot: slot, kh: kh}, true, nil
}

type fileHandle struct {
	l        *FileLocker
	key      string
	slot     uint64
	kh       Handle
	released atomic.Bool
}

// Unlock implements Handle. It may be called from any goroutine.
func (h *fileHandle) Unlock() error {
	if !h.released.CompareAndSwap(false, true) {
		return ErrReleased
	}
	h.l.mu.RLock()
	var err error
	if h.l.closed {
		err = fmt.Errorf("lock %q: locker closed while held: %w", h.key, ErrLost)
	} else if e := h.l.impl.unlock(h.key, h.slot); e != nil {
		err = fmt.Errorf("unlock %q in %s: %w", h.key, h.l.path, e)
	}
	h.l.mu.RUnlock()
	if e := h.kh.Unlock(); err == nil {
		err = e
	}
	return err
}

// waitImpl is implemented by file-lock implementations that can block until
// a slot is free without taking it.
type waitImpl interface {
	// waitFree returns once slot's lock is (or was, at some moment) free.
	// It may block in the kernel and cannot be interrupted; the caller
	// runs it where abandoning it is safe.
	waitFree(slot uint64) error
}

// WaitUnlocked implements Waiter: it returns once key's lock is free (or was,
// at some moment after the call), holding nothing, or ctx's error. On Linux
// every waiter of every process is woken together when the holder releases
// (a shared OFD lock on the key's byte, through a descriptor of its own, is
// granted as soon as no process holds the byte exclusively, and dropped at
// once); a waiter whose ctx ends is abandoned to finish in the background.
// Elsewhere it takes and releases the lock.
func (l *FileLocker) WaitUnlocked(ctx context.Context, key string) error {
	w, ok := l.impl.(waitImpl)
	if !ok {
		h, err := l.Lock(ctx, key)
		if err != nil {
			return err
		}
		return h.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	slot := Slot(key)
	done := make(chan error, 1)
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return fmt.Errorf("lock %q: %w", key, ErrClosed)
	}
	// Not under l.mu: a wait may last as long as another process's
	// creation, and Close must not wait for it. A wait on a description
	// that Close closed meanwhile fails at once.
	go func() { done <- w.waitFree(slot) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("wait for lock %q in %s: %w", key, l.path, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probeImpl is implemented by file-lock implementations that can test a
// slot without taking it.
type probeImpl interface {
	probe(slot uint64) (held bool, err error)
}

// IsLocked implements Prober: true when a goroutine of this locker or any
// process holds key's lock. On Linux it asks the kernel (F_OFD_GETLK) and
// takes nothing; elsewhere it tries the lock and releases it.
func (l *FileLocker) IsLocked(ctx context.Context, key string) (bool, error) {
	if held, _ := l.keyed.IsLocked(ctx, key); held {
		return true, nil
	}
	p, ok := l.impl.(probeImpl)
	if !ok {
		h, ok, err := l.TryLock(ctx, key)
		if err != nil || !ok {
			return !ok && err == nil, err
		}
		return false, h.Unlock()
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false, fmt.Errorf("lock %q: %w", key, ErrClosed)
	}
	held, err := p.probe(Slot(key))
	if err != nil {
		return false, fmt.Errorf("probe lock %q in %s: %w", key, l.path, err)
	}
	return held, nil
}
