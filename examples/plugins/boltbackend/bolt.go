package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// Backend stores entries in a bbolt database, base_dir/cache.db: payloads of
// at most inline_max bytes inside their record, larger ones in files under
// base_dir/blobs that the record names. A record is replaced in one bbolt
// transaction, so readers see the old entry or the new one; a replaced blob
// is removed after the transaction commits.
//
// The database file is locked by the process that opened it, so one
// process serves a base_dir at a time (a second one waits up to
// open_timeout, then fails). Instances opened on the same base_dir in one
// process share the database and the lock (a lock.Keyed), which is
// therefore exactly as wide as the storage is shared. (A regioncache host
// runs one process per plugin binary, so all its instances share too.)
//
// Writes are not fsynced (bbolt's NoSync): after a power loss the cache may
// have to be deleted, which is fine for a cache; a crash of the process
// loses nothing.
type Backend struct {
	db        *bolt.DB
	sh        *shared
	blobs     string
	inlineMax int64

	mu     sync.RWMutex
	closed bool
}

var bucket = []byte("entries")

// Open opens the backend. Arguments:
//
//	base_dir      string    directory of the database and blobs (required)
//	inline_max    size      largest payload kept in the database (default 64KiB)
//	open_timeout  duration  how long to wait for another process's lock on the database (default 5s)
func Open(args backends.Args) (backends.Backend, error) {
	if err := args.Only("base_dir", "inline_max", "open_timeout"); err != nil {
		return nil, err
	}
	dir, err := args.String("base_dir", "")
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: base_dir: want the directory to keep the cache in, got nothing", backends.ErrBadArgument)
	}
	inlineMax, err := args.Size("inline_max", 64<<10)
	if err != nil {
		return nil, err
	}
	timeout, err := args.Duration("open_timeout", 5*time.Second)
	if err != nil {
		return nil, err
	}
	b := &Backend{blobs: filepath.Join(dir, "blobs"), inlineMax: inlineMax}
	if err := os.MkdirAll(filepath.Join(b.blobs, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	sh, err := acquire(filepath.Join(dir, "cache.db"), timeout)
	if err != nil {
		return nil, err
	}
	b.sh, b.db = sh, sh.db
	return b, nil
}

// shared is a database open in this process, with its lock.
type shared struct {
	path  string
	db    *bolt.DB
	locks lock.Keyed
	refs  int
}

var (
	openMu sync.Mutex
	opened = map[string]*shared{} // by absolute database path
)

func acquire(path string, timeout time.Duration) (*shared, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if sh, ok := opened[abs]; ok {
		sh.refs++
		return sh, nil
	}
	db, err := bolt.Open(abs, 0o644, &bolt.Options{Timeout: timeout, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("bolt: opening %s: %w", abs, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: %w", err)
	}
	sh := &shared{path: abs, db: db, refs: 1}
	opened[abs] = sh
	return sh, nil
}

func (sh *shared) release() error {
	openMu.Lock()
	defer openMu.Unlock()
	sh.refs--
	if sh.refs > 0 {
		return nil
	}
	delete(opened, sh.path)
	return sh.db.Close()
}

// dbKey is key's key in the database: bbolt refuses empty keys.
func dbKey(key string) []byte { return append([]byte{'k'}, key...) }

func (b *Backend) check() error {
	if b.closed {
		return fmt.Errorf("bolt: %w", backends.ErrClosed)
	}
	return nil
}

// record is the stored form of an entry.
type record struct {
	created time.Time
	version int64
	tags    []string
	blob    string // file name under blobs; empty for inline payloads
	size    int64
	payload []byte // inline payload
}

const magic = 0xB1

func (r *record) encode() []byte {
	buf := []byte{magic, 0}
	if !r.created.IsZero() {
		buf[1] |= 1
		buf = binary.AppendVarint(buf, r.created.Unix())
		buf = binary.AppendUvarint(buf, uint64(r.created.Nanosecond()))
	}
	if r.blob != "" {
		buf[1] |= 2
	}
	buf = binary.AppendVarint(buf, r.version)
	buf = binary.AppendUvarint(buf, uint64(len(r.tags)))
	for _, t := range r.tags {
		buf = binary.AppendUvarint(buf, uint64(len(t)))
		buf = append(buf, t...)
	}
	if r.blob != "" {
		buf = binary.AppendUvarint(buf, uint64(len(r.blob)))
		buf = append(buf, r.blob...)
		buf = binary.AppendUvarint(buf, uint64(r.size))
		return buf
	}
	return append(buf, r.payload...)
}

var errCorrupt = errors.New("corrupt record")

// decode parses a record; the payload aliases p (copy it out of the tx).
func decode(p []byte) (*record, error) {
	if len(p) < 2 || p[0] != magic {
		return nil, errCorrupt
	}
	flags := p[1]
	p = p[2:]
	r := &record{}
	varint := func() int64 {
		v, n := binary.Varint(p)
		if n <= 0 {
			p = nil
			return -1
		}
		p = p[n:]
		return v
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	bytesOf := func() ([]byte, bool) {
		n, ok := uvarint()
		if !ok || n > uint64(len(p)) {
			return nil, false
		}
		b := p[:n]
		p = p[n:]
		return b, true
	}
	if flags&1 != 0 {
		sec := varint()
		ns, ok := uvarint()
		if p == nil || !ok || ns >= 1e9 {
			return nil, errCorrupt
		}
		r.created = time.Unix(sec, int64(ns))
	}
	r.version = varint()
	if p == nil {
		return nil, errCorrupt
	}
	nt, ok := uvarint()
	if !ok || nt > uint64(len(p)) {
		return nil, errCorrupt
	}
	for range nt {
		t, ok := bytesOf()
		if !ok {
			return nil, errCorrupt
		}
		r.tags = append(r.tags, string(t))
	}
	if flags&2 != 0 {
		name, ok := bytesOf()
		size, ok2 := uvarint()
		if !ok || !ok2 || len(p) != 0 || !validBlob(string(name)) {
			return nil, errCorrupt
		}
		r.blob, r.size = string(name), int64(size)
		return r, nil
	}
	r.payload, r.size = p, int64(len(p))
	return r, nil
}

// validBlob accepts only names newBlobName makes, so a corrupt record
// cannot point outside the blob directory.
func validBlob(name string) bool {
	if len(name) != 32 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

func newBlobName() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *record) entry() backends.Entry {
	return backends.Entry{Created: r.created, Version: int(r.version), Tags: r.tags}
}

// lookup returns the record of key (payload copied), or ErrNotFound.
func (b *Backend) lookup(key string) (*record, error) {
	var r *record
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(dbKey(key))
		if v == nil {
			return backends.ErrNotFound
		}
		var err error
		if r, err = decode(v); err != nil {
			return backends.ErrNotFound // corrupt is a miss
		}
		r.payload = bytes.Clone(r.payload)
		if r.payload == nil {
			r.payload = []byte{}
		}
		return nil
	})
	return r, err
}

// openBlob opens the blob of key's current record, retrying when a
// concurrent overwrite removed the blob between reading the record and
// opening it.
func (b *Backend) openBlob(key string, r *record) (*os.File, *record, error) {
	for range 5 {
		f, err := os.Open(filepath.Join(b.blobs, r.blob))
		if err == nil {
			return f, r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("bolt: %w", err)
		}
		if r, err = b.lookup(key); err != nil {
			return nil, nil, err
		}
		if r.blob == "" {
			return nil, r, nil
		}
	}
	return nil, nil, backends.ErrNotFound
}

// Get implements backends.Backend.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return backends.Entry{}, err
	}
	r, err := b.lookup(key)
	if err != nil {
		return backends.Entry{}, err
	}
	if r.blob != "" {
		var f *os.File
		f, r, err = b.openBlob(key, r)
		if err != nil {
			return backends.Entry{}, err
		}
		if f != nil {
			defer f.Close()
			p := make([]byte, r.size)
			if _, err := io.ReadFull(f, p); err != nil {
				return backends.Entry{}, backends.ErrNotFound // truncated blob: a miss
			}
			r.payload = p
		}
	}
	e := r.entry()
	e.Payload = r.payload
	return e, nil
}

// put stores r under key and removes the blob it replaces.
func (b *Backend) put(key string, r *record) error {
	var old string
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if v := bk.Get(dbKey(key)); v != nil {
			if o, err := decode(v); err == nil {
				old = o.blob
			}
		}
		return bk.Put(dbKey(key), r.encode())
	})
	if err != nil {
		if r.blob != "" {
			os.Remove(filepath.Join(b.blobs, r.blob))
		}
		return fmt.Errorf("bolt: %w", err)
	}
	if old != "" && old != r.blob {
		os.Remove(filepath.Join(b.blobs, old))
	}
	return nil
}

// writeBlob writes a new blob from src and returns its name and size.
func (b *Backend) writeBlob(src io.Reader) (string, int64, error) {
	f, err := b.CreateTemp("blob-*")
	if err != nil {
		return "", 0, err
	}
	n, err := io.Copy(f, src)
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("bolt: %w", err)
	}
	name, err := b.adopt(f.Name())
	return name, n, err
}

// adopt renames a file on the blob filesystem into the blob directory.
func (b *Backend) adopt(path string) (string, error) {
	name := newBlobName()
	if err := os.Rename(path, filepath.Join(b.blobs, name)); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("bolt: %w", err)
	}
	return name, nil
}

// Set implements backends.Backend.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return err
	}
	r := &record{created: e.Created, version: int64(e.Version), tags: slices.Clone(e.Tags)}
	if int64(len(e.Payload)) <= b.inlineMax {
		r.payload = e.Payload
	} else {
		name, n, err := b.writeBlob(bytes.NewReader(e.Payload))
		if err != nil {
			return err
		}
		r.blob, r.size = name, n
	}
	return b.put(key, r)
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return err
	}
	var old string
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if v := bk.Get(dbKey(key)); v != nil {
			if o, err := decode(v); err == nil {
				old = o.blob
			}
		}
		return bk.Delete(dbKey(key))
	})
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	if old != "" {
		os.Remove(filepath.Join(b.blobs, old))
	}
	return nil
}

// Locker implements backends.Locking with an in-process lock: the database
// is never shared by two processes.
func (b *Backend) Locker() lock.Locker { return &b.sh.locks }

// EvictTag implements backends.TagEvicter.
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return 0, err
	}
	var blobs []string
	n := 0
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		var keys [][]byte
		err := bk.ForEach(func(k, v []byte) error {
			r, err := decode(v)
			if err == nil && slices.Contains(r.tags, tag) {
				keys = append(keys, bytes.Clone(k))
				if r.blob != "" {
					blobs = append(blobs, r.blob)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bolt: %w", err)
	}
	for _, bl := range blobs {
		os.Remove(filepath.Join(b.blobs, bl))
	}
	return n, nil
}

// List implements backends.Lister.
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return err
	}
	var infos []backends.EntryInfo
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			r, err := decode(v)
			if err != nil {
				return nil // corrupt: not an entry
			}
			infos = append(infos, backends.EntryInfo{Key: string(k[1:]), Size: r.size, Created: r.created, Version: int(r.version), Tags: r.tags})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// StorageStats implements backends.StatReporter.
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	var s backends.Stats
	err := b.List(ctx, func(in backends.EntryInfo) error {
		s.Entries++
		s.Bytes += in.Size
		return nil
	})
	return s, err
}

// OpenFile implements backends.FileStore. A blob is opened as it is; an
// inline payload is copied into an unlinked temporary file.
func (b *Backend) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return nil, backends.Entry{}, err
	}
	r, err := b.lookup(key)
	if err != nil {
		return nil, backends.Entry{}, err
	}
	if r.blob != "" {
		f, r2, err := b.openBlob(key, r)
		if err != nil {
			return nil, backends.Entry{}, err
		}
		if f != nil {
			return f, r2.entry(), nil
		}
		r = r2
	}
	f, err := b.CreateTemp("inline-*")
	if err != nil {
		return nil, backends.Entry{}, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(r.payload); err != nil {
		f.Close()
		return nil, backends.Entry{}, fmt.Errorf("bolt: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, backends.Entry{}, fmt.Errorf("bolt: %w", err)
	}
	return f, r.entry(), nil
}

// StoreFile implements backends.FileStore. With move, a file on the blob
// filesystem is renamed into place; otherwise it is copied.
func (b *Backend) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	r := &record{created: e.Created, version: int64(e.Version), tags: slices.Clone(e.Tags), size: fi.Size()}
	if fi.Size() <= b.inlineMax {
		p := make([]byte, fi.Size())
		if _, err := f.ReadAt(p, 0); err != nil && err != io.EOF {
			return fmt.Errorf("bolt: %w", err)
		}
		r.payload = p
		return b.put(key, r)
	}
	if move {
		if name, err := b.adopt(f.Name()); err == nil {
			r.blob = name
			return b.put(key, r)
		}
	}
	name, n, err := b.writeBlob(io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return err
	}
	r.blob, r.size = name, n
	return b.put(key, r)
}

// CreateTemp implements backends.TempFiler: a file on the blob filesystem,
// so that StoreFile with move can rename it into place.
func (b *Backend) CreateTemp(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Join(b.blobs, "tmp"), pattern)
	if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	return f, nil
}

// Close implements backends.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.sh.release()
}
