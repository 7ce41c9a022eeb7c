// Package fsstore is the on-disk engine shared by the filesystem and rawfs
// backends: one self-describing file per entry, named by a hash of the key in
// one of 256 shard directories, written to a temporary file in its shard and
// renamed into place; lock-free reads; a shared size counter that makes
// cache_size eviction cost independent of the number of entries; and the
// file locks (lock.FileLocker) for dogpile locking and for the store's own
// per-entry and eviction locks.
//
// Layout of a cache directory:
//
//	regioncache.lock       lock file of the regions' dogpile locks (never deleted)
//	regioncache.store.lock lock file of the store's own entry, size, eviction
//	                       and sweep locks (never deleted)
//	regioncache.size       24 bytes: accounted bytes, entries, generation
//	tmp/                   rawfs CreateTemp files
//	00/ .. ff/             shards: <32 hex> entries, <32 hex>.<16 hex>.data
//	                       rawfs data files, .tmp-* files being written
//
// Nothing in a cache directory is trusted. Every path operation is relative
// to an open directory and never follows a link (openat with O_NOFOLLOW on
// Linux, os.Root elsewhere); an entry must be a regular file with one link
// whose header agrees with its real size before anything is allocated from
// it; whatever else sits in an entry position is a miss and is unlinked (or,
// for a directory, renamed aside). A damaged shard is a miss for its own keys
// only. Files being written carry an flock held by their writer, so that a
// crashed writer's leftovers are recognised at once and swept.
package fsstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

var (
	errNotRegular = errors.New("not a regular file with one link")
	errExpired    = errors.New("expired")
)

// setAside moves whatever is planted at entry name (a directory, a FIFO, a
// device, a link, a hard link) out of the entry position, under the entry's
// lock and only if it is still not a single-link regular file: a link or
// special file is unlinked (which never touches what it points to), a
// directory is renamed to a temporary name and left for the operator.
func (s *Store) setAside(sh *dirHandle, name string) {
	h, ok, err := s.internal.TryLock(context.Background(), lockEntry+name)
	if err != nil || !ok {
		return
	}
	defer h.Unlock()
	st, err := sh.lstat(name)
	if err != nil || st.regular && st.nlink <= 1 {
		return
	}
	if st.dir {
		_ = sh.rename(name, tmpPref+"planted-"+randHex())
	} else {
		_ = sh.remove(name)
	}
	s.problem(sh.path+"/"+name, errNotRegular)
}

// File names inside a cache directory.
const (
	LockFile      = "regioncache.lock"
	StoreLockFile = "regioncache.store.lock"
	SizeFile      = "regioncache.size"
	TempDir       = "tmp"
	tmpPref       = ".tmp-"
)

// Keys of the store's own locks, in their own lock file (StoreLockFile), so
// that no region key can name them.
const (
	lockEvict = "evict"
	lockSize  = "size"
	lockSweep = "sweep"
	lockEntry = "entry:"
)

type fileStat struct {
	size    int64
	mtimeNs int64
	ctimeNs int64
	dev     uint64
	ino     uint64
	nlink   uint64 // 0 where unknown (non-Linux)
	regular bool
	dir     bool
}

// Options configure a Store.
type Options struct {
	Dir      string        // cache directory; created (0700) if missing
	Kind     byte          // KindValue or KindFile
	MaxBytes int64         // cache_size; 0 = unbounded
	TTL      time.Duration // expiration_time; 0 = never
	Sync     bool          // fsync entries and directories

	// TouchInterval is how stale a file's access mark (its mtime) may be
	// before a read refreshes it. Default 1s; negative disables.
	TouchInterval time.Duration
	// SweepAge is how long since its last change a file being written must
	// be left alone by sweeps even when no writer's flock is on it (the
	// moment between its creation and its flock). Default 2s on Linux,
	// where writers mark their files with flocks; 1h elsewhere.
	SweepAge time.Duration
	// SweepInterval is how often an open store sweeps crash leftovers
	// (temporary files whose writer died) from the directory; one process
	// at a time does it. Default 1m; negative disables (Open still sweeps).
	SweepInterval time.Duration
	// LowWater is the fraction of MaxBytes eviction frees down to. Default 0.95.
	LowWater float64
	// OnProblem, if non-nil, is told about damage found in the directory
	// (a shard that is not a directory, a planted file set aside) that the
	// store worked around. It may be called from any goroutine.
	OnProblem func(path string, err error)
}

// Store is an open cache directory. Its methods are safe for concurrent use,
// also by several processes on one directory.
type Store struct {
	o        Options
	dir      string
	base     *dirHandle
	locker   *lock.FileLocker // the regions' dogpile locks
	internal *lock.FileLocker // the store's own locks
	size     *os.File

	life   sync.RWMutex // read-held by every operation; Close write-holds it
	closed bool

	shardMu sync.Mutex
	shards  [256]atomic.Pointer[dirHandle]
	tmp     atomic.Pointer[dirHandle]

	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	evicting atomic.Bool
	resweep  atomic.Bool // a sweep saw a dead writer's leftover too young to take
	closing  atomic.Bool // Close has begun: the evictor finishes its pass but waits for nobody

	hook atomic.Pointer[func() error]

	afterSelect func([]candidate) // tests: runs between victim selection and deletion
}

func (s *Store) problem(path string, err error) {
	if f := s.o.OnProblem; f != nil {
		f(path, err)
	}
}

// SetWriteHook installs f (nil removes it) to run before every entry write;
// an error from it fails the write as a full disk would. For tests.
func (s *Store) SetWriteHook(f func() error) {
	if f == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&f)
}

func (s *Store) runHook() error {
	if f := s.hook.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// Open opens (creating if needed) the cache directory of o.
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: base_dir: required", backends.ErrBadArgument)
	}
	if o.TouchInterval == 0 {
		o.TouchInterval = time.Second
	}
	if o.SweepAge == 0 {
		o.SweepAge = time.Hour
		if liveLocks {
			o.SweepAge = 2 * time.Second
		}
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Minute
	}
	if o.LowWater <= 0 || o.LowWater > 1 {
		o.LowWater = 0.95
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("base_dir: %w", err)
	}
	// base_dir itself is the user's choice and may be a link; nothing
	// below it is followed.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("base_dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: base_dir: %s is not a directory", backends.ErrBadArgument, dir)
	}
	s := &Store{o: o, dir: dir}
	if s.base, err = openDir(dir); err != nil {
		return nil, fmt.Errorf("base_dir: %w", err)
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	if s.locker, err = lock.NewFileLocker(filepath.Join(dir, LockFile)); err != nil {
		s.base.close()
		return nil, err
	}
	if s.internal, err = lock.NewFileLocker(filepath.Join(dir, StoreLockFile)); err != nil {
		s.locker.Close()
		s.base.close()
		return nil, err
	}
	sizePath := filepath.Join(dir, SizeFile)
	_, statErr := os.Lstat(sizePath)
	s.size, err = openNoFollow(sizePath, os.O_RDWR|os.O_CREATE)
	if err != nil {
		s.internal.Close()
		s.locker.Close()
		s.base.close()
		return nil, fmt.Errorf("open size file: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new counter on a directory that may already hold entries (an
		// older cache, or one whose counter was removed): count them once.
		if _, err := s.Recount(context.Background()); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.sweepAll()
		s.sweepEvery()
	}()
	return s, nil
}

func openNoFollow(path string, flag int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	return os.OpenFile(path, flag, 0o600)
}

// Dir returns the absolute cache directory.
func (s *Store) Dir() string { return s.dir }

// Locker returns the store's file locker (valid until Close).
func (s *Store) Locker() *lock.FileLocker { return s.locker }

// Options returns the options the store was opened with (with defaults).
func (s *Store) Options() Options { return s.o }

// Close releases the store's files and locks. It is idempotent.
func (s *Store) Close() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.life.Unlock()
	s.closing.Store(true)
	s.bgCancel()
	s.bg.Wait()
	var errs []error
	for i := range s.shards {
		if d := s.shards[i].Swap(nil); d != nil {
			errs = append(errs, d.close())
		}
	}
	if d := s.tmp.Swap(nil); d != nil {
		errs = append(errs, d.close())
	}
	if s.size != nil {
		errs = append(errs, s.size.Close())
	}
	errs = append(errs, s.locker.Close(), s.internal.Close(), s.base.close())
	return errors.Join(errs...)
}

// enter marks the start of an operation; it fails after Close.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return backends.ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// Name returns the file name of key's entry: 32 hex digits of its SHA-256.
func Name(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

func shardOf(name string) int {
	b, _ := hex.DecodeString(name[:2])
	return int(b[0])
}

// shard returns the open shard directory i, or nil if it does not exist and
// create is false. With create, whatever is planted in the shard's place (a
// link, a file) is replaced by a directory.
func (s *Store) shard(i int, create bool) (*dirHandle, error) {
	if d := s.shards[i].Load(); d != nil {
		return d, nil
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	if d := s.shards[i].Load(); d != nil {
		return d, nil
	}
	name := fmt.Sprintf("%02x", i)
	d, repaired, err := s.base.openSub(name, create)
	if repaired {
		s.problem(s.dir+"/"+name, errors.New("not a directory: replaced"))
	}
	if err != nil {
		if isNotExist(err) && !create {
			return nil, nil
		}
		return nil, fmt.Errorf("shard directory: %w", err)
	}
	s.shards[i].Store(d)
	return d, nil
}

func tmpName() string {
	var b [8]byte
	rand.Read(b[:])
	return tmpPref + hex.EncodeToString(b[:])
}

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// read reads and decodes key's entry file. A missing, foreign or damaged
// entry is ErrNotFound; a damaged one is deleted.
func (s *Store) read(key string, kind byte) (backends.Entry, *dirHandle, string, fileStat, error) {
	name := Name(key)
	var st fileStat
	sh, err := s.shard(shardOf(name), false)
	if err != nil {
		// A damaged shard is a miss for its own keys, never an error that
		// keeps their creators from running.
		s.problem(s.dir+"/"+name[:2], err)
		return backends.Entry{}, nil, name, st, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	}
	if sh == nil {
		return backends.Entry{}, nil, name, st, backends.ErrNotFound
	}
	var e backends.Entry
	var expired bool
	_, st, err = sh.readFile(name, s.o.TouchInterval, func(data []byte) error {
		var derr error
		if e, derr = Decode(data, kind, key); derr != nil {
			return derr
		}
		if s.o.TTL > 0 && !e.Created.IsZero() && time.Since(e.Created) > s.o.TTL {
			expired = true
			return errExpired
		}
		return nil
	})
	switch {
	case err == nil:
	case isNotExist(err):
		return backends.Entry{}, sh, name, st, backends.ErrNotFound
	case isNotRegular(err):
		// Something planted in place of an entry (a link, a directory, a
		// FIFO, a device, a hard link): never read or touch it; set it
		// aside so the key is cacheable again.
		s.setAside(sh, name)
		return backends.Entry{}, sh, name, st, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	case expired:
		// Checked before the access mark is refreshed, so the file is
		// still the one read and is deleted whatever its mtime.
		s.removeEntry(context.Background(), sh, name, &st)
		return backends.Entry{}, sh, name, st, backends.ErrNotFound
	case errors.Is(err, ErrWrongKey):
		return backends.Entry{}, sh, name, st, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrOldFormat), errors.Is(err, ErrWrongKind):
		// Damaged, truncated, grown, older format or another kind: a miss
		// that makes room for the regenerated value.
		s.removeEntry(context.Background(), sh, name, &st)
		return backends.Entry{}, sh, name, st, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return backends.Entry{}, sh, name, st, fmt.Errorf("%w: %v", backends.ErrNotFound, err)
	default:
		return backends.Entry{}, sh, name, st, err
	}
	return e, sh, name, st, nil
}

// Get returns key's entry (kind KindValue).
func (s *Store) Get(ctx context.Context, key string) (backends.Entry, error) {
	if err := s.enter(ctx); err != nil {
		return backends.Entry{}, err
	}
	defer s.leave()
	e, _, _, _, err := s.read(key, s.o.Kind)
	return e, err
}

// writeTemp creates a temporary file in sh and fills it with write, which
// writes size bytes.
func (s *Store) writeTemp(sh *dirHandle, size int64, write func(f *os.File) error) (string, error) {
	tmp := tmpName()
	f, err := sh.createExcl(tmp)
	if err != nil {
		return "", err
	}
	err = func() error {
		if !lockFile(f) {
			return fmt.Errorf("temporary file %s taken by a sweeper", tmp)
		}
		if err := s.runHook(); err != nil {
			return err
		}
		if err := write(f); err != nil {
			return err
		}
		if s.o.Sync {
			return f.Sync()
		}
		return nil
	}()
	if err != nil {
		_ = sh.remove(tmp)
		f.Close()
		return "", err
	}
	return tmp, f.Close()
}

// entrySize is the size of the entry file writeEntry writes.
func entrySize(key string, e *backends.Entry, plen int) int64 {
	return int64(metaSize(key, e) + plen + trailerSize)
}

// Put stores e (with payload p) under key.
func (s *Store) Put(ctx context.Context, key string, e backends.Entry, p []byte) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), true)
	if err != nil {
		return err
	}
	size := entrySize(key, &e, len(p))
	tmp, err := s.writeTemp(sh, size, func(f *os.File) error { return writeEntry(f, s.o.Kind, key, &e, p) })
	if err != nil {
		return err
	}
	return s.commit(ctx, sh, name, tmp, size, 0)
}

// writeEntry writes the entry file: in one write for small payloads, in three
// (header, payload, checksum) for large ones so the payload is not copied.
func writeEntry(w io.Writer, kind byte, key string, e *backends.Entry, p []byte) error {
	if len(p) < 1<<20 {
		_, err := w.Write(Encode(kind, key, e, p))
		return err
	}
	h := appendHeader(make([]byte, 0, metaSize(key, e)), kind, key, e, len(p))
	d := xxhash.New()
	d.Write(h)
	d.Write(p)
	if _, err := w.Write(h); err != nil {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	_, err := w.Write(binary.LittleEndian.AppendUint64(nil, d.Sum64()))
	return err
}

// commit renames tmp over name under the entry's lock and accounts for it.
// dataSize is the size of the rawfs data file the new entry refers to.
func (s *Store) commit(ctx context.Context, sh *dirHandle, name, tmp string, size, dataSize int64) error {
	h, err := s.internal.Lock(ctx, lockEntry+name)
	if err != nil {
		_ = sh.remove(tmp)
		return err
	}
	oldAcct, oldData, existed := s.accounted(sh, name)
	// The rename (and the old data file's removal) and their accounting
	// are one step under the size lock, so that a full scan that replaces
	// the counter never counts a change the counter gets again after.
	total, err := s.sizeTx(func() (int64, int64, error) {
		if err := sh.rename(tmp, name); err != nil {
			return 0, 0, err
		}
		if oldData != "" {
			_ = sh.remove(oldData)
		}
		var dn int64 = 1
		if existed {
			dn = 0
		}
		return size + dataSize - oldAcct, dn, nil
	})
	if err != nil {
		h.Unlock()
		_ = sh.remove(tmp)
		return err
	}
	if s.o.Sync {
		_ = sh.syncDir()
	}
	h.Unlock()
	if s.o.MaxBytes > 0 && total > s.o.MaxBytes {
		// Eviction runs in the background, out of the caller's critical
		// path (which holds the key's dogpile lock). Only a directory
		// over its slack makes writers help, bounded and cancellable.
		s.kickEvict()
		if total > s.hardLimit() {
			s.backPressure(ctx)
		}
	}
	return nil
}

// Slack is the fraction of cache_size by which the accounted bytes may
// exceed it while background eviction catches up, before writers help.
const Slack = 1.0 / 8

func (s *Store) hardLimit() int64 { return s.o.MaxBytes + int64(float64(s.o.MaxBytes)*Slack) }

// maxBackPressure bounds how long one write waits for eviction.
const maxBackPressure = time.Second

// backPressure makes a writer that finds the directory over its slack evict
// itself if nobody else is, or wait for the evictor to bring the directory
// back under the slack: never longer than maxBackPressure, and never past
// ctx.
func (s *Store) backPressure(ctx context.Context) {
	deadline := time.Now().Add(maxBackPressure)
	hard := s.hardLimit()
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 5*time.Millisecond) {
		h, ok, err := s.internal.TryLock(ctx, lockEvict)
		if err != nil {
			return
		}
		if ok {
			total, n, _ := s.counter()
			if total > s.o.MaxBytes {
				s.evict(ctx, total, n, int64(float64(s.o.MaxBytes)*s.o.LowWater))
			}
			h.Unlock()
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if total, _, _ := s.counter(); total <= hard || time.Now().After(deadline) {
			return
		}
	}
}

// accounted returns the bytes entry name accounts for (entry file plus rawfs
// data file), the rawfs data file name, and whether the entry exists. The
// entry's lock must be held.
func (s *Store) accounted(sh *dirHandle, name string) (int64, string, bool) {
	st, err := sh.lstat(name)
	if err != nil {
		return 0, "", false
	}
	if s.o.Kind != KindFile {
		return st.size, "", true
	}
	ref, _ := s.dataRef(sh, name)
	return st.size + ref.Size, ref.Name, true
}

// dataRef reads rawfs entry name's data file reference (without checking the
// key); the zero FileRef if there is none.
func (s *Store) dataRef(sh *dirHandle, name string) (FileRef, bool) {
	data, _, err := sh.readFile(name, -1, nil)
	if err != nil {
		return FileRef{}, false
	}
	h, need, err := parseHeader(data, int64(len(data)), KindFile, nil, false, false)
	if err != nil || need > 0 {
		return FileRef{}, false
	}
	ref, ok := DecodeFileRef(data[h.PayloadOff : h.PayloadOff+int(h.PayloadLen)])
	if !ok || !dataNameOK(name, ref.Name) {
		return FileRef{}, false
	}
	return ref, true
}

// Delete removes key's entry. An absent entry is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	name := Name(key)
	sh, err := s.shard(shardOf(name), false)
	if err != nil || sh == nil {
		return err
	}
	_, err = s.removeEntry(ctx, sh, name, nil)
	return err
}

// removeEntry deletes entry name (and its rawfs data file) under the entry's
// lock. If want is non-nil, it deletes only if the file is still the one
// described by want (same inode, size and mtime): a newer write is kept.
func (s *Store) removeEntry(ctx context.Context, sh *dirHandle, name string, want *fileStat) (int64, error) {
	var h lock.Handle
	var err error
	if want != nil {
		var ok bool
		h, ok, err = s.internal.TryLock(ctx, lockEntry+name)
		if err != nil || !ok {
			return 0, err // busy: somebody is writing it, so it is fresh
		}
	} else if h, err = s.internal.Lock(ctx, lockEntry+name); err != nil {
		return 0, err
	}
	defer h.Unlock()
	st, err := sh.lstat(name)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	if want != nil && (st.ino != want.ino || st.size != want.size || st.mtimeNs != want.mtimeNs) {
		return 0, nil
	}
	acct, data, _ := s.accounted(sh, name)
	// Accounted before the unlink (which stays out of the size lock, so
	// that an eviction burst does not hold up writers' commits): a scan
	// that replaces the counter in between can only count the file once
	// too often, never too few — the safe direction for cache_size.
	if _, err := s.sizeTx(func() (int64, int64, error) { return -acct, -1, nil }); err != nil {
		return 0, err
	}
	if err := sh.remove(name); err != nil {
		s.addSize(acct, 1)
		if isNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	if data != "" {
		_ = sh.remove(data)
	}
	return max(acct, 1), nil
}

// The size file holds three little-endian 64-bit numbers: accounted bytes,
// entries, and a generation bumped by every change, so that a full scan can
// replace the counter only if nothing changed it meanwhile.

func readCounter(f *os.File) (bytes, entries, gen int64) {
	var b [24]byte
	n, _ := f.ReadAt(b[:], 0)
	if n >= 16 {
		bytes = int64(binary.LittleEndian.Uint64(b[:8]))
		entries = int64(binary.LittleEndian.Uint64(b[8:16]))
	}
	if n == 24 {
		gen = int64(binary.LittleEndian.Uint64(b[16:]))
	}
	return max(bytes, 0), max(entries, 0), gen
}

func writeCounter(f *os.File, bytes, entries, gen int64) {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(bytes))
	binary.LittleEndian.PutUint64(b[8:16], uint64(entries))
	binary.LittleEndian.PutUint64(b[16:], uint64(gen))
	_, _ = f.WriteAt(b[:], 0)
}

// lockSizeFile takes the size counter's lock. It is held for a read and a
// write of 24 bytes, so waiters poll it briefly (20µs to 500µs) rather than
// with the dogpile locks' back-off, which reaches 10ms and would make every
// writer of a busy directory queue behind it.
func (s *Store) lockSizeFile() (lock.Handle, error) {
	ctx := context.Background()
	for wait := 20 * time.Microsecond; ; wait = min(2*wait, 500*time.Microsecond) {
		h, ok, err := s.internal.TryLock(ctx, lockSize)
		if err != nil || ok {
			return h, err
		}
		time.Sleep(wait)
	}
}

// addSize adjusts the shared size counter and returns the new totals.
func (s *Store) addSize(dBytes, dEntries int64) (int64, int64) {
	h, err := s.lockSizeFile()
	if err != nil {
		return 0, 0
	}
	defer h.Unlock()
	bytes, entries, gen := readCounter(s.size)
	if dBytes == 0 && dEntries == 0 {
		return bytes, entries
	}
	bytes = max(bytes+dBytes, 0)
	entries = max(entries+dEntries, 0)
	writeCounter(s.size, bytes, entries, gen+1)
	return bytes, entries
}

// sizeTx runs fn under the size lock and applies the change it returns to
// the shared counter (unless it fails), returning the new byte total.
func (s *Store) sizeTx(fn func() (dBytes, dEntries int64, err error)) (int64, error) {
	h, err := s.lockSizeFile()
	if err != nil {
		return 0, err
	}
	defer h.Unlock()
	bytes, entries, gen := readCounter(s.size)
	dBytes, dEntries, err := fn()
	if err != nil {
		return bytes, err
	}
	if dBytes != 0 || dEntries != 0 {
		bytes = max(bytes+dBytes, 0)
		entries = max(entries+dEntries, 0)
		writeCounter(s.size, bytes, entries, gen+1)
	}
	return bytes, nil
}

// counter returns the shared size counter with its generation.
func (s *Store) counter() (bytes, entries, gen int64) {
	h, err := s.lockSizeFile()
	if err != nil {
		return 0, 0, -1
	}
	defer h.Unlock()
	return readCounter(s.size)
}

// setSizeIf overwrites the shared size counter with what a scan found, only
// if its generation is still gen (no update happened during the scan, which
// the scan may or may not have seen). It reports whether it did.
func (s *Store) setSizeIf(gen, bytes, entries int64) bool {
	h, err := s.lockSizeFile()
	if err != nil {
		return false
	}
	defer h.Unlock()
	if _, _, g := readCounter(s.size); g != gen {
		return false
	}
	writeCounter(s.size, bytes, entries, gen+1)
	return true
}

// Counter returns the shared size counter: accounted bytes and entries. It is
// approximate (a process killed between a write and its accounting leaves it
// off until a full scan finds the directory quiet: Recount, or an eviction
// pass that sees every shard).
func (s *Store) Counter() (bytes, entries int64) { return s.addSize(0, 0) }
