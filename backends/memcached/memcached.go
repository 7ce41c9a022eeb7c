// Package memcached is the memcached regioncache backend, registered as
// "memcached": a store shared by every process on every machine that uses
// the same memcached servers, on github.com/bradfitz/gomemcache.
//
// Each entry is one memcached item: a compact binary header (the key, the
// creation time, the version, the fencing token of its writer and the tags)
// then the payload. An item that does not decode, or that names another
// key, is a miss. Keys of any length and any bytes are safe: a key that is
// not a valid memcached key with the prefix (at most 250 bytes, no spaces or
// control bytes) is stored under the SHA-256 of the key, in a namespace of
// its own; the key kept in the item guards against any mix-up.
//
// The distributed lock (distributed_lock, on by default) is a lease: an item
// created with "add" holding a random token, with lock_timeout as its
// expiry, renewed while its holder runs by a compare-and-swap on the token,
// and released by a compare-and-swap that expires it (memcached's delete
// cannot be conditional). Waiters poll (memcached has no notifications),
// starting at 1 ms and backing off to 10 ms. Every acquisition also takes a
// fencing token from a per-key counter ("incr"), and the store after a
// creation (SetFenced) writes only while the lock still carries the holder's
// token and no holder with a later fencing token has stored: a creator whose
// lease ran out never overwrites its successor's value.
//
// gomemcache takes no context: each operation is bounded by socket_timeout
// instead, and a context is checked before each operation.
//
// Arguments (dogpile.cache's names where it has them):
//
//	url                    server "host:port", or a list (or comma-separated
//	                       string) of them (default "127.0.0.1:11211")
//	prefix                 key prefix (default "regioncache")
//	memcached_expire_time  server-side expiry of entries (default 0: none;
//	                       whole seconds, at least 1s; memcached's clock
//	                       ticks in seconds, so an entry goes between that
//	                       time and two seconds later)
//	distributed_lock       bool: use the memcached lock (default true)
//	lock_timeout           the lock's lease (default 30s; whole seconds,
//	                       at least 1s; like entries, a lease lasts up to
//	                       two seconds longer),
//	                       renewed every third of it while its holder runs
//	socket_timeout         per-operation network timeout (default 1s)
//	max_idle_conns         idle connections kept per server (default 64)
package memcached

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/collapse"
	"github.com/regioncache/regioncache/lock"
)

func init() {
	backends.Register("memcached", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

var knownArgs = []string{"url", "prefix", "memcached_expire_time", "distributed_lock", "lock_timeout", "socket_timeout", "max_idle_conns"}

// DefaultPrefix is the key prefix used when none is given.
const DefaultPrefix = "regioncache"

// maxKey is memcached's key length limit.
const maxKey = 250

// Backend is the memcached backend. Its methods are safe for concurrent use.
type Backend struct {
	client *memcache.Client
	prefix string
	ttl    time.Duration
	locker *Lock
	closed atomic.Bool

	// reads collapses concurrent gets of one key (see internal/collapse):
	// a stampede of readers in one process costs the server two requests.
	reads collapse.Group[backends.Entry]
}

// Open connects to memcached as args say (see the package doc). It does not
// contact the servers: a server that is down makes the first calls fail.
func Open(args backends.Args) (*Backend, error) {
	if err := args.Only(knownArgs...); err != nil {
		return nil, err
	}
	servers, err := serverList(args)
	if err != nil {
		return nil, err
	}
	prefix, err := args.String("prefix", DefaultPrefix)
	if err != nil {
		return nil, err
	}
	if prefix == "" || !validKey(prefix) || len(prefix) > 100 {
		return nil, fmt.Errorf("%w: prefix: want 1-100 printable bytes without spaces, got %q", backends.ErrBadArgument, prefix)
	}
	ttl, err := args.Duration("memcached_expire_time", 0)
	if err != nil {
		return nil, err
	}
	if ttl < 0 || (ttl > 0 && (ttl < time.Second || ttl%time.Second != 0)) {
		return nil, fmt.Errorf("%w: memcached_expire_time: want whole seconds, at least 1s (memcached's resolution), got %v", backends.ErrBadArgument, ttl)
	}
	lockOn, err := args.Bool("distributed_lock", true)
	if err != nil {
		return nil, err
	}
	lease, err := args.Duration("lock_timeout", 30*time.Second)
	if err != nil {
		return nil, err
	}
	if lease < time.Second || lease%time.Second != 0 {
		return nil, fmt.Errorf("%w: lock_timeout: want whole seconds, at least 1s (memcached's resolution), got %v", backends.ErrBadArgument, lease)
	}
	st, err := args.Duration("socket_timeout", time.Second)
	if err != nil {
		return nil, err
	}
	if st <= 0 {
		return nil, fmt.Errorf("%w: socket_timeout: want a positive duration, got %v", backends.ErrBadArgument, st)
	}
	idle, err := args.Int("max_idle_conns", 64)
	if err != nil {
		return nil, err
	}
	if idle <= 0 {
		return nil, fmt.Errorf("%w: max_idle_conns: want a positive number, got %d", backends.ErrBadArgument, idle)
	}
	c := memcache.New(servers...)
	c.Timeout = st
	c.MaxIdleConns = idle
	b := &Backend{client: c, prefix: prefix, ttl: ttl}
	if lockOn {
		b.locker = &Lock{b: b, ttl: lease, renew: lease / 3}
	}
	return b, nil
}

func serverList(args backends.Args) ([]string, error) {
	if !args.Has("url") {
		return []string{"127.0.0.1:11211"}, nil
	}
	out, err := args.HostPorts("url")
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: url: want at least one \"host:port\"", backends.ErrBadArgument)
	}
	return out, nil
}

// validKey reports whether s may appear in a memcached key: no control
// bytes, no spaces, no DEL.
func validKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// mkey returns the memcached key of key in namespace ns ("e" entries, "l"
// locks, "f" fencing counters): prefix:ns:key when that is a valid key,
// else prefix:ns#:sha256(key).
func (b *Backend) mkey(ns, key string) string {
	k := b.prefix + ":" + ns + ":" + key
	if len(k) <= maxKey && validKey(key) {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return b.prefix + ":" + ns + "#:" + hex.EncodeToString(sum[:])
}

// Locker implements backends.Locking: the memcached lock, or nil when
// distributed_lock is false.
func (b *Backend) Locker() lock.Locker {
	if b.locker == nil {
		return nil
	}
	return b.locker
}

// StorageTTL implements backends.StorageExpirer.
func (b *Backend) StorageTTL() time.Duration { return b.ttl }

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backends.ErrClosed
	}
	return ctx.Err()
}

func wrap(op, key string, err error) error {
	if key == "" {
		return fmt.Errorf("memcached backend: %s: %w", op, err)
	}
	return fmt.Errorf("memcached backend: %s %s: %w", op, shortKey(key), err)
}

func shortKey(k string) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q...(%d bytes)", k[:max], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// expiration converts a TTL to memcached's exptime: seconds, or an absolute
// Unix time past 30 days. memcached's clock ticks in whole seconds from a
// timer that a busy machine delays, so an item given n seconds may go after
// anything over n-1 (n-2 when its clock lags); two seconds are added, so
// that an item lives at least d (and at most about d plus two seconds).
func expiration(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	s := int64((d+time.Second-1)/time.Second) + 2
	if s > 30*24*3600 {
		s += time.Now().Unix()
	}
	return int32(min(s, 1<<31-1))
}

// Get implements backends.Backend.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	return b.reads.Do(ctx, key, func(context.Context) (backends.Entry, error) {
		it, err := b.client.Get(b.mkey("e", key))
		if err != nil {
			if errors.Is(err, memcache.ErrCacheMiss) {
				return backends.Entry{}, backends.ErrNotFound
			}
			return backends.Entry{}, wrap("get", key, err)
		}
		e, _, ok := decode(it.Value, key)
		if !ok {
			return backends.Entry{}, fmt.Errorf("%w: corrupt entry for %s", backends.ErrNotFound, shortKey(key))
		}
		return e, nil
	})
}

// Set implements backends.Backend with one "set".
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	it := &memcache.Item{Key: b.mkey("e", key), Value: encode(key, e, 0), Expiration: expiration(b.ttl)}
	if err := b.client.Set(it); err != nil {
		return wrap("set", key, err)
	}
	return nil
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.client.Delete(b.mkey("e", key)); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return wrap("delete", key, err)
	}
	return nil
}

// GetMulti implements backends.MultiGetter with one multi-get per server.
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := make([]*backends.Entry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	mkeys := make([]string, len(keys))
	for i, k := range keys {
		mkeys[i] = b.mkey("e", k)
	}
	items, err := b.client.GetMulti(mkeys)
	if err != nil {
		return nil, wrap("get multi", "", err)
	}
	for i, mk := range mkeys {
		it := items[mk]
		if it == nil {
			continue
		}
		if e, _, ok := decode(it.Value, keys[i]); ok {
			out[i] = &e
		}
	}
	return out, nil
}

// Close implements backends.Backend. Held locks keep renewing until they
// are unlocked; later calls of every other method return ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.reads.Close(backends.ErrClosed) // no read starts from now on
	err := b.client.Close()
	b.reads.Wait()
	if err != nil {
		return fmt.Errorf("memcached backend: close: %w", err)
	}
	return nil
}

// SetFenced implements backends.FencedSetter. It writes e only while h (a
// handle of this backend's Locker for key) still holds the lock, and only if
// no later holder (a higher fencing token) has stored key since: it checks
// the lock's token, reads the entry with its CAS id, and writes with
// compare-and-swap (or add, when absent), retrying when another write slips
// in between. A lost lock, or a later holder's value, is lock.ErrLost and
// nothing is written.
func (b *Backend) SetFenced(ctx context.Context, key string, e backends.Entry, h lock.Handle) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	lh, ok := h.(*LockHandle)
	if !ok || b.locker == nil || lh.l != b.locker || lh.key != key {
		return fmt.Errorf("memcached backend: set fenced %s: %w: not a handle of this backend's lock for that key", shortKey(key), backends.ErrUnsupported)
	}
	mk := b.mkey("e", key)
	val := encode(key, e, lh.fence)
	for attempt := 0; attempt < 8; attempt++ {
		if err := lh.Check(ctx); err != nil {
			return fmt.Errorf("memcached backend: set fenced %s: %w", shortKey(key), err)
		}
		cur, err := b.client.Get(mk)
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			err = b.client.Add(&memcache.Item{Key: mk, Value: val, Expiration: expiration(b.ttl)})
			if errors.Is(err, memcache.ErrNotStored) {
				continue // somebody stored first: judge their fence
			}
		case err != nil:
			return wrap("set fenced", key, err)
		default:
			if _, fence, ok := decode(cur.Value, key); ok && fence > lh.fence {
				lh.markLost()
				return fmt.Errorf("memcached backend: set fenced %s: a later lock holder (fencing token %d > %d) stored it: %w",
					shortKey(key), fence, lh.fence, lock.ErrLost)
			}
			cur.Value, cur.Expiration = val, expiration(b.ttl)
			err = b.client.CompareAndSwap(cur)
			if errors.Is(err, memcache.ErrCASConflict) || errors.Is(err, memcache.ErrNotStored) {
				continue // rewritten or deleted in between: judge again
			}
		}
		if err != nil {
			return wrap("set fenced", key, err)
		}
		return nil
	}
	return wrap("set fenced", key, errors.New("too many concurrent writes; not stored"))
}

// Entry encoding, format 1: magic "mc", 1, a flags byte (bit 0: Created is
// set), Created as big-endian int64 Unix seconds and uint32 nanoseconds (with
// bit 0), the writer's fencing token (uvarint; 0 for unfenced writes), the
// version (varint), the key (uvarint length, bytes), the tag count (uvarint)
// and each tag (uvarint length, bytes), then the payload.
func encode(key string, e backends.Entry, fence uint64) []byte {
	n := 4 + 12 + 3*binary.MaxVarintLen64 + len(key) + len(e.Payload)
	for _, t := range e.Tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, 'm', 'c', 1)
	if e.Created.IsZero() {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.Created.Unix()))
		buf = binary.BigEndian.AppendUint32(buf, uint32(e.Created.Nanosecond()))
	}
	buf = binary.AppendUvarint(buf, fence)
	buf = binary.AppendVarint(buf, int64(e.Version))
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	buf = binary.AppendUvarint(buf, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		buf = binary.AppendUvarint(buf, uint64(len(t)))
		buf = append(buf, t...)
	}
	return append(buf, e.Payload...)
}

// decode parses an item written by encode for key. Anything malformed, or an
// item of another key, reports ok == false.
func decode(b []byte, key string) (e backends.Entry, fence uint64, ok bool) {
	if len(b) < 4 || b[0] != 'm' || b[1] != 'c' || b[2] != 1 {
		return e, 0, false
	}
	off := 4
	switch b[3] {
	case 0:
	case 1:
		if len(b) < 16 {
			return e, 0, false
		}
		nsec := binary.BigEndian.Uint32(b[12:16])
		if nsec >= 1e9 {
			return e, 0, false
		}
		e.Created = time.Unix(int64(binary.BigEndian.Uint64(b[4:12])), int64(nsec))
		off = 16
	default:
		return e, 0, false
	}
	fence, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return backends.Entry{}, 0, false
	}
	off += n
	v, n := binary.Varint(b[off:])
	if n <= 0 || int64(int(v)) != v {
		return backends.Entry{}, 0, false
	}
	off += n
	kl, n := binary.Uvarint(b[off:])
	if n <= 0 || kl > uint64(len(b)-off-n) {
		return backends.Entry{}, 0, false
	}
	off += n
	if string(b[off:off+int(kl)]) != key {
		return backends.Entry{}, 0, false
	}
	off += int(kl)
	nt, n := binary.Uvarint(b[off:])
	if n <= 0 || nt > uint64(len(b)-off) {
		return backends.Entry{}, 0, false
	}
	off += n
	if nt > 0 {
		e.Tags = make([]string, nt)
		for i := range e.Tags {
			l, n := binary.Uvarint(b[off:])
			if n <= 0 || l > uint64(len(b)-off-n) {
				return backends.Entry{}, 0, false
			}
			off += n
			e.Tags[i] = string(b[off : off+int(l)])
			off += int(l)
		}
	}
	e.Version = int(v)
	e.Payload = b[off:len(b):len(b)]
	return e, fence, true
}

// ReadOnlyPayloads implements backends.ReadOnlyPayloads: each payload points
// into the fresh buffer of one get, which nothing changes afterwards.
func (b *Backend) ReadOnlyPayloads() bool { return true }
