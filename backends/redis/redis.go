// Package redis is the Redis regioncache backend, registered as "redis": a
// store that any number of processes on any number of machines share. It
// keeps each entry as one Redis string (a compact binary header with the
// creation time, version and tags, then the payload), enforces an optional
// server-side TTL, reads many keys with one MGET and writes them in one
// pipeline, evicts by tag through per-tag Redis sets (never KEYS), and
// provides a distributed dogpile lock (Lock, usable on its own).
//
// It connects through go-redis's UniversalClient, so a single server,
// Sentinel and Cluster all work. Every Redis key of a backend starts with the
// {hash tag} "{prefix}", so in Cluster a whole region lives in one slot: that
// is what lets MGET, the MULTI that writes an entry together with its tag
// sets, and the tag-eviction script (which touches an entry and a tag set)
// run in Cluster at all. Spread load over a cluster with several regions
// (several prefixes).
//
// Arguments:
//
//	url                    redis:// or rediss:// URL (excludes host, port, db,
//	                       username, password, tls, addrs, master_name)
//	host, port             server address (default 127.0.0.1:6379)
//	db                     database number (default 0; not in Cluster)
//	username, password     ACL credentials
//	tls                    bool: connect with TLS (default false)
//	addrs                  list (or comma-separated string) of addresses:
//	                       Sentinel addresses with master_name, else Cluster
//	                       seed nodes when there are several (or cluster=true)
//	master_name            Sentinel master name
//	cluster                bool: treat addrs as a Cluster even if only one
//	socket_timeout         read/write timeout (default go-redis's 3s)
//	prefix                 key prefix, without braces (default "regioncache")
//	redis_expiration_time  server-side TTL of entries (default 0: none)
//	distributed_lock       bool: use the Redis lock for dogpile locking
//	                       (default true); false: in-process locks only
//	lock_timeout           the Redis lock's lease (default 30s), renewed while
//	                       its holder runs
package redis

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

func init() {
	backends.Register("redis", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Options configure a backend made with New.
type Options struct {
	// Prefix namespaces the backend's keys (default "regioncache"). It must
	// not contain '{' or '}': it becomes the {hash tag} of every key.
	Prefix string

	// StorageTTL, if positive, is the server-side TTL of every entry.
	StorageTTL time.Duration

	// NoLock disables the distributed lock (the backend then has no
	// Locker, and regions fall back on in-process locks).
	NoLock bool

	// LockTimeout is the Redis lock's lease (default 30s).
	LockTimeout time.Duration
}

// Backend is the Redis backend. Its methods are safe for concurrent use.
type Backend struct {
	client goredis.UniversalClient
	owned  bool
	prefix string // the hash tag, "{prefix}"
	epre   string // entry keys: "{prefix}e:" + key
	tpre   string // tag sets: "{prefix}t:" + tag
	ttl    time.Duration
	locker *Lock
	closed atomic.Bool
}

// DefaultPrefix is the key prefix used when none is given.
const DefaultPrefix = "regioncache"

// New returns a backend on client, which the caller keeps ownership of:
// Close does not close it.
func New(client goredis.UniversalClient, opts Options) (*Backend, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: prefix: want a string without '{' or '}' (it becomes the keys' {hash tag}), got %q",
			backends.ErrBadArgument, opts.Prefix)
	}
	if opts.StorageTTL < 0 || opts.LockTimeout < 0 {
		return nil, fmt.Errorf("%w: negative TTL", backends.ErrBadArgument)
	}
	if opts.StorageTTL > 0 && opts.StorageTTL < time.Millisecond {
		return nil, fmt.Errorf("%w: redis_expiration_time: want at least 1ms, got %v", backends.ErrBadArgument, opts.StorageTTL)
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 30 * time.Second
	}
	if opts.LockTimeout < 10*time.Millisecond {
		return nil, fmt.Errorf("%w: lock_timeout: want at least 10ms, got %v", backends.ErrBadArgument, opts.LockTimeout)
	}
	tag := "{" + opts.Prefix + "}"
	b := &Backend{
		client: client,
		prefix: tag,
		epre:   tag + "e:",
		tpre:   tag + "t:",
		ttl:    opts.StorageTTL,
	}
	if !opts.NoLock {
		b.locker = NewLock(client, LockOptions{Prefix: tag + "l:", TTL: opts.LockTimeout})
	}
	return b, nil
}

// Client returns the backend's go-redis client.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// Locker implements backends.Locking: the Redis lock, or nil when
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
		return fmt.Errorf("redis backend: %s: %w", op, err)
	}
	return fmt.Errorf("redis backend: %s %s: %w", op, shortKey(key), err)
}

// shortKey quotes a key for an error message, cut to a readable length.
func shortKey(k string) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q...(%d bytes)", k[:max], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// Get implements backends.Backend with one GET.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	s, err := b.client.Get(ctx, b.epre+key).Result()
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return backends.Entry{}, backends.ErrNotFound
		}
		return backends.Entry{}, wrap("get", key, err)
	}
	e, ok := decode(s)
	if !ok {
		return backends.Entry{}, fmt.Errorf("%w: corrupt entry for %s", backends.ErrNotFound, shortKey(key))
	}
	return e, nil
}

// Set implements backends.Backend. An entry with tags is written in one
// MULTI with the additions to its tag sets.
func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if len(e.Tags) == 0 {
		if err := b.client.Set(ctx, b.epre+key, encode(e), b.ttl).Err(); err != nil {
			return wrap("set", key, err)
		}
		return nil
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		b.queueSet(ctx, p, key, e)
		return nil
	})
	if err != nil {
		return wrap("set", key, err)
	}
	return nil
}

func (b *Backend) queueSet(ctx context.Context, p goredis.Pipeliner, key string, e backends.Entry) {
	p.Set(ctx, b.epre+key, encode(e), b.ttl)
	for _, t := range e.Tags {
		tk := b.tpre + t
		p.SAdd(ctx, tk, key)
		if b.ttl > 0 {
			// Every member was just given this TTL or an earlier one, so the
			// set outlives its members; expired members are dropped by
			// EvictTag.
			p.PExpire(ctx, tk, b.ttl)
		}
	}
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.client.Del(ctx, b.epre+key).Err(); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

// GetMulti implements backends.MultiGetter with one MGET.
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := make([]*backends.Entry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = b.epre + k
	}
	vals, err := b.client.MGet(ctx, rkeys...).Result()
	if err != nil {
		return nil, wrap("mget", "", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if e, ok := decode(s); ok {
			out[i] = &e
		}
	}
	return out, nil
}

// SetMulti implements backends.MultiSetter with one MULTI/EXEC round trip.
func (b *Backend) SetMulti(ctx context.Context, keys []string, entries []backends.Entry) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", backends.ErrBadArgument, len(keys), len(entries))
	}
	if len(keys) == 0 {
		return nil
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			b.queueSet(ctx, p, k, entries[i])
		}
		return nil
	})
	if err != nil {
		return wrap("set multi", "", err)
	}
	return nil
}

// DeleteMulti implements backends.MultiDeleter with one DEL.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = b.epre + k
	}
	if err := b.client.Del(ctx, rkeys...).Err(); err != nil {
		return wrap("delete multi", "", err)
	}
	return nil
}

// evictScript settles one member of a tag set atomically: if the entry still
// has the value judged (by its SHA-1, ARGV[1]) it is deleted when ARGV[2] is
// "1" (it carries the tag) and the member is removed from the set; an absent
// entry's member is removed; an entry rewritten since it was read is left
// alone with its member (the rewrite may have re-added the tag).
var evictScript = goredis.NewScript(`
local v = redis.call('get', KEYS[1])
if not v then
  redis.call('srem', KEYS[2], ARGV[3])
  return 0
end
if redis.sha1hex(v) ~= ARGV[1] then return 0 end
redis.call('srem', KEYS[2], ARGV[3])
if ARGV[2] == '1' then
  redis.call('del', KEYS[1])
  return 1
end
return 0`)

// EvictTag implements backends.TagEvicter. It walks the tag's set with
// SSCAN (never KEYS), reads the members' entries with MGET and deletes those
// that still carry the tag, each with a script that first checks that the
// entry was not rewritten in between.
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	tk := b.tpre + tag
	removed := 0
	var cursor uint64
	for {
		members, next, err := b.client.SScan(ctx, tk, cursor, "", 256).Result()
		if err != nil {
			return removed, wrap("evict tag", tag, err)
		}
		if len(members) > 0 {
			n, err := b.evictMembers(ctx, tk, tag, members)
			removed += n
			if err != nil {
				return removed, err
			}
		}
		if next == 0 {
			return removed, nil
		}
		cursor = next
	}
}

func (b *Backend) evictMembers(ctx context.Context, tk, tag string, members []string) (int, error) {
	rkeys := make([]string, len(members))
	for i, m := range members {
		rkeys[i] = b.epre + m
	}
	vals, err := b.client.MGet(ctx, rkeys...).Result()
	if err != nil {
		return 0, wrap("evict tag", tag, err)
	}
	p := b.client.Pipeline()
	cmds := make([]*goredis.Cmd, len(members))
	for i, v := range vals {
		s, _ := v.(string)
		carries := "0"
		if v != nil {
			if e, ok := decode(s); ok && hasTag(e.Tags, tag) {
				carries = "1"
			}
		}
		sum := sha1.Sum([]byte(s))
		cmds[i] = evictScript.Eval(ctx, p, []string{rkeys[i], tk}, hex.EncodeToString(sum[:]), carries, members[i])
	}
	// One round trip for the batch (plain EVAL: the script is short).
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return 0, wrap("evict tag", tag, err)
	}
	n := 0
	for _, c := range cmds {
		if v, _ := c.Int(); v == 1 {
			n++
		}
	}
	return n, nil
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// scanner returns the node that holds the backend's slot (Cluster) or the
// client itself.
func (b *Backend) scanner(ctx context.Context) (goredis.Cmdable, error) {
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		return cc.MasterForKey(ctx, b.epre)
	}
	return b.client, nil
}

// globEscape escapes the glob metacharacters of SCAN MATCH.
func globEscape(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// List implements backends.Lister with SCAN over the backend's prefix (and
// MGET for the metadata). Entries written or deleted during the listing may
// or may not be seen; corrupt entries are skipped.
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	node, err := b.scanner(ctx)
	if err != nil {
		return wrap("list", "", err)
	}
	match := globEscape(b.epre) + "*"
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, match, 512).Result()
		if err != nil {
			return wrap("list", "", err)
		}
		if len(keys) > 0 {
			vals, err := b.client.MGet(ctx, keys...).Result()
			if err != nil {
				return wrap("list", "", err)
			}
			for i, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue
				}
				e, ok := decode(s)
				if !ok {
					continue
				}
				info := backends.EntryInfo{
					Key:     strings.TrimPrefix(keys[i], b.epre),
					Size:    int64(len(e.Payload)),
					Created: e.Created,
					Version: e.Version,
					Tags:    cloneStrings(e.Tags),
				}
				if err := fn(info); err != nil {
					return err
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

func cloneStrings(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

// StorageStats implements backends.StatReporter: the number of entries and
// their payload bytes, by listing them.
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	var st backends.Stats
	err := b.List(ctx, func(e backends.EntryInfo) error {
		st.Entries++
		st.Bytes += e.Size
		return nil
	})
	return st, err
}

// Close implements backends.Backend: it stops the lock's subscription and
// closes the client if the backend opened it. Later calls return nil.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.locker != nil {
		_ = b.locker.Close()
	}
	if b.owned {
		if err := b.client.Close(); err != nil {
			return fmt.Errorf("redis backend: close: %w", err)
		}
	}
	return nil
}

// Entry encoding: magic "rc", format 1, created as big-endian int64 Unix
// nanoseconds (math.MinInt64 for the zero time), version as a varint, the
// tag count as a uvarint and each tag as a uvarint length and its bytes, then
// the payload.
const (
	magic0, magic1, format1 = 'r', 'c', 1
	zeroCreated             = math.MinInt64
)

func encode(e backends.Entry) []byte {
	n := 3 + 8 + binary.MaxVarintLen64 + binary.MaxVarintLen64 + len(e.Payload)
	for _, t := range e.Tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, magic0, magic1, format1)
	created := int64(zeroCreated)
	if !e.Created.IsZero() {
		created = e.Created.UnixNano()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(created))
	buf = binary.AppendVarint(buf, int64(e.Version))
	buf = binary.AppendUvarint(buf, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		buf = binary.AppendUvarint(buf, uint64(len(t)))
		buf = append(buf, t...)
	}
	return append(buf, e.Payload...)
}

// decode parses an entry from the string go-redis returned, without copying:
// the payload and tags point into s (callers must not modify Payload, as the
// backends.Entry contract says). Anything malformed reports ok == false.
func decode(s string) (e backends.Entry, ok bool) {
	if len(s) < 11 || s[0] != magic0 || s[1] != magic1 || s[2] != format1 {
		return e, false
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	created := int64(binary.BigEndian.Uint64(b[3:11]))
	off := 11
	v, n := binary.Varint(b[off:])
	if n <= 0 || int64(int(v)) != v {
		return e, false
	}
	off += n
	nt, n := binary.Uvarint(b[off:])
	if n <= 0 || nt > uint64(len(b)-off) {
		return e, false
	}
	off += n
	if nt > 0 {
		e.Tags = make([]string, nt)
		for i := range e.Tags {
			l, n := binary.Uvarint(b[off:])
			if n <= 0 || l > uint64(len(b)-off-n) {
				return backends.Entry{}, false
			}
			off += n
			e.Tags[i] = s[off : off+int(l)]
			off += int(l)
		}
	}
	if created != zeroCreated {
		e.Created = time.Unix(0, created)
	}
	e.Version = int(v)
	e.Payload = b[off:len(b):len(b)]
	return e, true
}
