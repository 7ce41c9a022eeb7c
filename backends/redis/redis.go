// Package redis is the Redis regioncache backend, registered as "redis": a
// store that any number of processes on any number of machines share. It
// keeps each entry as one Redis string (a compact binary header with the
// creation time, version and tags, then the payload), enforces an optional
// server-side TTL, reads many keys with MGET and writes them in one
// pipeline, evicts by tag through per-tag Redis sets (never KEYS), provides a
// distributed dogpile lock (Lock, usable on its own) whose holder's store is
// fenced (SetFenced: one script checks the lock's token and writes), and can
// keep hot entries in process, kept coherent by Redis server-assisted
// invalidation (local_cache).
//
// It connects through go-redis's UniversalClient, so a single server,
// Sentinel and Cluster all work.
//
// # Key layout and Redis Cluster
//
// With cluster_layout "slot" (the default) every Redis key of a backend
// starts with the {hash tag} "{prefix}", so in Cluster a whole region lives
// in one slot, on one node: MGET, the MULTI that writes an entry together
// with its tag sets, and tag eviction are each one atomic command, but one
// node takes all of the region's load. With cluster_layout "spread" each key
// is placed in one of 256 buckets by a hash of the key, and each bucket has
// its own hash tag "{prefix:xx}", so a region spreads over up to 256 slots
// (every node of a cluster). An entry, its lock and the tag sets that list it
// share its bucket, so a tagged write and a fenced write stay one atomic
// step; multi operations are grouped by bucket (one MGET per bucket, in one
// pipelined round trip per node); tag eviction visits the tag's set in every
// bucket. Outside Cluster both layouts behave the same.
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
//	cluster_layout         "slot" (default) or "spread" (see above)
//	socket_timeout         read/write timeout (default go-redis's 3s)
//	prefix                 key prefix, without braces (default "regioncache")
//	redis_expiration_time  server-side TTL of entries (default 0: none)
//	distributed_lock       bool: use the Redis lock for dogpile locking
//	                       (default true); false: in-process locks only
//	lock_timeout           the Redis lock's lease (default 30s), renewed while
//	                       its holder runs
//	local_cache            keep up to this many entries (an integer) or
//	                       bytes ("64MiB") in process, invalidated by the
//	                       server (RESP3 CLIENT TRACKING); default off. Not
//	                       available with Cluster: Open says so.
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
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/collapse"
	"github.com/regioncache/regioncache/lock"
)

func init() {
	backends.Register("redis", func(args backends.Args) (backends.Backend, error) {
		return Open(args)
	})
}

// Layout is how a backend places its keys in Redis Cluster slots (see the
// package doc).
type Layout int

const (
	// LayoutSlot puts every key of a backend in the slot of "{prefix}".
	LayoutSlot Layout = iota
	// LayoutSpread puts each key in one of 256 buckets "{prefix:xx}".
	LayoutSpread
)

// String returns the layout's argument value: "slot" or "spread".
func (l Layout) String() string {
	if l == LayoutSpread {
		return "spread"
	}
	return "slot"
}

// Options configure a backend made with New.
type Options struct {
	// Prefix namespaces the backend's keys (default "regioncache"). It must
	// not contain '{' or '}': it becomes the {hash tag} of every key.
	Prefix string

	// Layout places keys in Cluster slots (default LayoutSlot).
	Layout Layout

	// StorageTTL, if positive, is the server-side TTL of every entry.
	StorageTTL time.Duration

	// NoLock disables the distributed lock (the backend then has no
	// Locker, and regions fall back on in-process locks).
	NoLock bool

	// LockTimeout is the Redis lock's lease (default 30s).
	LockTimeout time.Duration

	// LocalCache, if set, keeps hot entries in process (see LocalCache).
	// It needs a client that can speak RESP3 to one server or a Sentinel
	// master: New refuses it on a ClusterClient.
	LocalCache *LocalCacheOptions
}

// Backend is the Redis backend. Its methods are safe for concurrent use.
type Backend struct {
	client  goredis.UniversalClient
	owned   bool
	prefix  string // the hash tag of LayoutSlot, "{prefix}"
	layout  Layout
	buckets [256]string // LayoutSpread: the hash tag of each bucket, "{prefix:xx}"
	ttl     time.Duration
	locker  *Lock
	local   *localTier // nil without local_cache
	closed  atomic.Bool

	// reads collapses concurrent GETs of one key: a stampede of readers in
	// one process costs Redis two requests, and none of them gets an entry
	// read before its call began (see internal/collapse).
	reads collapse.Group[backends.Entry]
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
	if n := len(opts.Prefix); n >= 3 && opts.Prefix[n-3] == ':' && isHex(opts.Prefix[n-2]) && isHex(opts.Prefix[n-1]) {
		return nil, fmt.Errorf("%w: prefix: must not end in ':' and two hex digits (%q could be a bucket of prefix %q in the spread layout)",
			backends.ErrBadArgument, opts.Prefix, opts.Prefix[:n-3])
	}
	if opts.Layout != LayoutSlot && opts.Layout != LayoutSpread {
		return nil, fmt.Errorf("%w: cluster_layout: want \"slot\" or \"spread\", got layout %d", backends.ErrBadArgument, opts.Layout)
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
		layout: opts.Layout,
		ttl:    opts.StorageTTL,
	}
	for i := range b.buckets {
		b.buckets[i] = fmt.Sprintf("{%s:%02x}", opts.Prefix, i)
	}
	if !opts.NoLock {
		b.locker = NewLock(client, LockOptions{Prefix: tag + "l:", TTL: opts.LockTimeout})
		b.locker.keyOf = b.lockKey
	}
	if opts.LocalCache != nil {
		lt, err := newLocalTier(client, *opts.LocalCache)
		if err != nil {
			if b.locker != nil {
				_ = b.locker.Close()
			}
			return nil, err
		}
		b.local = lt
		var prefixes []string
		if b.layout == LayoutSlot {
			prefixes = []string{b.prefix + "e:"}
		} else {
			for _, bt := range b.buckets {
				prefixes = append(prefixes, bt+"e:")
			}
		}
		lt.start(prefixes, b.stripEntryKey, b.ttl)
	}
	return b, nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// tagOf returns the hash tag of key's bucket.
func (b *Backend) tagOf(key string) string {
	if b.layout == LayoutSlot {
		return b.prefix
	}
	return b.buckets[bucketOf(key)]
}

// bucketOf hashes key to one of 256 buckets (FNV-1a).
func bucketOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h^h>>8^h>>16^h>>24) & 0xff
}

// stripEntryKey returns the key of a Redis entry key of this backend.
func (b *Backend) stripEntryKey(rk string) (string, bool) {
	n := len(b.prefix)
	if b.layout == LayoutSpread {
		n = len(b.buckets[0])
	}
	if len(rk) < n+2 || rk[n:n+2] != "e:" || rk[:len(b.prefix)-1] != b.prefix[:len(b.prefix)-1] {
		return "", false
	}
	return rk[n+2:], true
}

// entryKey is the Redis key of key's entry.
func (b *Backend) entryKey(key string) string { return b.tagOf(key) + "e:" + key }

// lockKey is the Redis key of key's lock, in the entry's slot.
func (b *Backend) lockKey(key string) string { return b.tagOf(key) + "l:" + key }

// tagSetKey is the Redis key of the set of tag's keys in key's bucket.
func (b *Backend) tagSetKey(key, tag string) string { return b.tagOf(key) + "t:" + tag }

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

func (b *Backend) wrap(op, key string, err error) error {
	if cc, ok := b.client.(*goredis.ClusterClient); ok && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// A node may have failed over: learn the new slot map now rather
		// than at go-redis's next periodic reload (asynchronous and
		// coalesced by go-redis).
		cc.ReloadState(context.Background())
	}
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

// Get implements backends.Backend with one GET, or from the local tier.
func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return backends.Entry{}, err
	}
	if b.local != nil {
		return b.local.get(ctx, b, key)
	}
	return b.getRemote(ctx, key)
}

func (b *Backend) getRemote(ctx context.Context, key string) (backends.Entry, error) {
	return b.reads.Do(ctx, key, func(ctx context.Context) (backends.Entry, error) {
		return b.readRemote(ctx, key)
	})
}

// readRemote is one GET of key's entry.
func (b *Backend) readRemote(ctx context.Context, key string) (backends.Entry, error) {
	s, err := b.client.Get(ctx, b.entryKey(key)).Result()
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return backends.Entry{}, backends.ErrNotFound
		}
		return backends.Entry{}, b.wrap("get", key, err)
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
	if b.local != nil {
		defer b.local.forget(key)
	}
	if len(e.Tags) == 0 {
		if err := b.client.Set(ctx, b.entryKey(key), encode(e), b.ttl).Err(); err != nil {
			return b.wrap("set", key, err)
		}
		return nil
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		b.queueSet(ctx, p, key, e)
		return nil
	})
	if err != nil {
		return b.wrap("set", key, err)
	}
	return nil
}

func (b *Backend) queueSet(ctx context.Context, p goredis.Pipeliner, key string, e backends.Entry) {
	p.Set(ctx, b.entryKey(key), encode(e), b.ttl)
	for _, t := range e.Tags {
		tk := b.tagSetKey(key, t)
		p.SAdd(ctx, tk, key)
		if b.ttl > 0 {
			// Every member was just given this TTL or an earlier one, so the
			// set outlives its members; expired members are dropped by
			// EvictTag.
			p.PExpire(ctx, tk, b.ttl)
		}
	}
}

// fencedSetScript writes an entry (KEYS[2], value ARGV[2], TTL ARGV[3] ms or
// "0") and adds its key (ARGV[4]) to its tag sets (KEYS[3:]) only if the
// lock KEYS[1] still holds the token ARGV[1]; it returns 1 if it wrote, 0 if
// the lock was not held.
var fencedSetScript = goredis.NewScript(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('set', KEYS[2], ARGV[2])
else
  redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
for i = 3, #KEYS do
  redis.call('sadd', KEYS[i], ARGV[4])
  if ARGV[3] ~= '0' then redis.call('pexpire', KEYS[i], ARGV[3]) end
end
return 1`)

// SetFenced implements backends.FencedSetter: one script checks that h (a
// handle of this backend's Locker for key) still holds the lock and writes
// the entry with its tag sets. A lost lock writes nothing and returns an
// error wrapping lock.ErrLost (and h.Lost() is closed); a handle of another
// locker gets backends.ErrUnsupported.
func (b *Backend) SetFenced(ctx context.Context, key string, e backends.Entry, h lock.Handle) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	lh, ok := h.(*LockHandle)
	if !ok || b.locker == nil || lh.r != b.locker || lh.rkey != b.lockKey(key) {
		return fmt.Errorf("redis backend: set fenced %s: %w: not a handle of this backend's lock for that key", shortKey(key), backends.ErrUnsupported)
	}
	if b.local != nil {
		defer b.local.forget(key)
	}
	keys := make([]string, 2, 2+len(e.Tags))
	keys[0], keys[1] = lh.rkey, b.entryKey(key)
	for _, t := range e.Tags {
		keys = append(keys, b.tagSetKey(key, t))
	}
	n, err := fencedSetScript.Run(ctx, b.client, keys, lh.token, encode(e), b.ttl.Milliseconds(), key).Int64()
	if err != nil {
		return b.wrap("set fenced", key, err)
	}
	if n != 1 {
		lh.markLost()
		return fmt.Errorf("redis backend: set fenced %s: %w", shortKey(key), lock.ErrLost)
	}
	return nil
}

// Delete implements backends.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if b.local != nil {
		defer b.local.forget(key)
	}
	if err := b.client.Del(ctx, b.entryKey(key)).Err(); err != nil {
		return b.wrap("delete", key, err)
	}
	return nil
}

// groups returns the indexes of keys grouped by bucket (one group in
// LayoutSlot), in the order of first appearance.
func (b *Backend) groups(keys []string) [][]int {
	if b.layout == LayoutSlot {
		all := make([]int, len(keys))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	var order []int
	var by [256][]int
	for i, k := range keys {
		bk := bucketOf(k)
		if by[bk] == nil {
			order = append(order, bk)
		}
		by[bk] = append(by[bk], i)
	}
	out := make([][]int, len(order))
	for j, bk := range order {
		out[j] = by[bk]
	}
	return out
}

// GetMulti implements backends.MultiGetter: one MGET per bucket, all in one
// pipelined round trip (one MGET in LayoutSlot).
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := make([]*backends.Entry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var remote []int // indexes not served by the local tier
	if b.local != nil {
		for i, k := range keys {
			if e, ok := b.local.lookup(k); ok {
				out[i] = e
				continue
			}
			remote = append(remote, i)
		}
		if len(remote) == 0 {
			return out, nil
		}
		// Fill the local tier through Get, which guards against racing
		// invalidations; multi reads of cold keys are rare on this path.
		for _, i := range remote {
			e, err := b.local.get(ctx, b, keys[i])
			if errors.Is(err, backends.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[i] = &e
		}
		return out, nil
	}
	groups := b.groups(keys)
	cmds := make([]*goredis.SliceCmd, len(groups))
	if len(groups) == 1 {
		cmds[0] = b.client.MGet(ctx, b.rkeys(keys, groups[0])...)
	} else {
		p := b.client.Pipeline()
		for j, g := range groups {
			cmds[j] = p.MGet(ctx, b.rkeys(keys, g)...)
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, b.wrap("mget", "", err)
		}
	}
	for j, g := range groups {
		vals, err := cmds[j].Result()
		if err != nil {
			return nil, b.wrap("mget", "", err)
		}
		for n, v := range vals {
			s, ok := v.(string)
			if !ok || n >= len(g) {
				continue
			}
			if e, ok := decode(s); ok {
				out[g[n]] = &e
			}
		}
	}
	return out, nil
}

func (b *Backend) rkeys(keys []string, idx []int) []string {
	out := make([]string, len(idx))
	for n, i := range idx {
		out[n] = b.entryKey(keys[i])
	}
	return out
}

// SetMulti implements backends.MultiSetter with one MULTI/EXEC round trip
// (in Cluster, one MULTI/EXEC per slot, sent together).
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
	if b.local != nil {
		defer func() {
			for _, k := range keys {
				b.local.forget(k)
			}
		}()
	}
	if b.layout == LayoutSlot {
		_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				b.queueSet(ctx, p, k, entries[i])
			}
			return nil
		})
		if err != nil {
			return b.wrap("set multi", "", err)
		}
		return nil
	}
	// LayoutSpread: one script per bucket writes its entries with their tag
	// sets atomically (a MULTI may not span slots); the scripts go in one
	// pipeline, one round trip per node.
	p := b.client.Pipeline()
	for _, g := range b.groups(keys) {
		rkeys := make([]string, 0, len(g))
		argv := make([]any, 0, 1+3*len(g))
		argv = append(argv, b.ttl.Milliseconds())
		for _, i := range g {
			e := entries[i]
			rkeys = append(rkeys, b.entryKey(keys[i]))
			for _, t := range e.Tags {
				rkeys = append(rkeys, b.tagSetKey(keys[i], t))
			}
			argv = append(argv, encode(e), len(e.Tags), keys[i])
		}
		setManyScript.Eval(ctx, p, rkeys, argv...)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return b.wrap("set multi", "", err)
	}
	return nil
}

// setManyScript writes entries of one slot with their tag sets. ARGV[1] is
// the TTL in ms ("0": none); then per entry three arguments: the value, its
// tag count n and its key (the tag sets' member). KEYS has per entry its
// Redis key followed by its n tag-set keys.
var setManyScript = goredis.NewScript(`
local ttl = ARGV[1]
local k = 1
local a = 2
while a <= #ARGV do
  local v, n, member = ARGV[a], tonumber(ARGV[a+1]), ARGV[a+2]
  if ttl == '0' then
    redis.call('set', KEYS[k], v)
  else
    redis.call('set', KEYS[k], v, 'PX', ttl)
  end
  for i = 1, n do
    redis.call('sadd', KEYS[k+i], member)
    if ttl ~= '0' then redis.call('pexpire', KEYS[k+i], ttl) end
  end
  k = k + n + 1
  a = a + 3
end
return 1`)

// DeleteMulti implements backends.MultiDeleter with one DEL per bucket (one
// DEL in LayoutSlot).
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	if b.local != nil {
		defer func() {
			for _, k := range keys {
				b.local.forget(k)
			}
		}()
	}
	groups := b.groups(keys)
	if len(groups) == 1 {
		if err := b.client.Del(ctx, b.rkeys(keys, groups[0])...).Err(); err != nil {
			return b.wrap("delete multi", "", err)
		}
		return nil
	}
	p := b.client.Pipeline()
	for _, g := range groups {
		p.Del(ctx, b.rkeys(keys, g)...)
	}
	if _, err := p.Exec(ctx); err != nil {
		return b.wrap("delete multi", "", err)
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

// tagSets returns the Redis keys of tag's sets: one in LayoutSlot, one per
// bucket in LayoutSpread.
func (b *Backend) tagSets(tag string) []string {
	if b.layout == LayoutSlot {
		return []string{b.prefix + "t:" + tag}
	}
	out := make([]string, len(b.buckets))
	for i, bt := range b.buckets {
		out[i] = bt + "t:" + tag
	}
	return out
}

// EvictTag implements backends.TagEvicter. It walks the tag's set (in
// LayoutSpread, the tag's set of every bucket that has one) with SSCAN
// (never KEYS), reads the members' entries with MGET and deletes those that
// still carry the tag, each with a script that first checks that the entry
// was not rewritten in between.
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	sets := b.tagSets(tag)
	if len(sets) > 1 {
		// Skip the buckets without the tag: one pipelined EXISTS per set.
		p := b.client.Pipeline()
		ex := make([]*goredis.IntCmd, len(sets))
		for i, tk := range sets {
			ex[i] = p.Exists(ctx, tk)
		}
		if _, err := p.Exec(ctx); err != nil {
			return 0, b.wrap("evict tag", tag, err)
		}
		var have []string
		for i, c := range ex {
			if c.Val() > 0 {
				have = append(have, sets[i])
			}
		}
		sets = have
	}
	removed := 0
	for _, tk := range sets {
		var cursor uint64
		for {
			members, next, err := b.client.SScan(ctx, tk, cursor, "", 256).Result()
			if err != nil {
				return removed, b.wrap("evict tag", tag, err)
			}
			if len(members) > 0 {
				n, err := b.evictMembers(ctx, tk, tag, members)
				removed += n
				if err != nil {
					return removed, err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return removed, nil
}

// evictMembers settles members of the tag set tk, which all share tk's
// bucket (and so its slot).
func (b *Backend) evictMembers(ctx context.Context, tk, tag string, members []string) (int, error) {
	rkeys := make([]string, len(members))
	for i, m := range members {
		rkeys[i] = b.entryKey(m)
	}
	vals, err := b.client.MGet(ctx, rkeys...).Result()
	if err != nil {
		return 0, b.wrap("evict tag", tag, err)
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
		return 0, b.wrap("evict tag", tag, err)
	}
	n := 0
	for i, c := range cmds {
		if v, _ := c.Int(); v == 1 {
			n++
			if b.local != nil {
				b.local.forget(members[i])
			}
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

// forEachNode calls fn with every master that may hold the backend's keys:
// in Cluster, the slot's master (LayoutSlot) or every master (LayoutSpread);
// otherwise the client itself.
func (b *Backend) forEachNode(ctx context.Context, fn func(ctx context.Context, node goredis.Cmdable) error) error {
	cc, ok := b.client.(*goredis.ClusterClient)
	if !ok {
		return fn(ctx, b.client)
	}
	if b.layout == LayoutSlot {
		node, err := cc.MasterForKey(ctx, b.prefix)
		if err != nil {
			return err
		}
		return fn(ctx, node)
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return fn(ctx, c) })
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

// List implements backends.Lister with SCAN over the backend's keys (on
// every master that holds some) and MGET for the metadata. Entries written
// or deleted during the listing may or may not be seen; corrupt entries are
// skipped.
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	match := globEscape(b.prefix) + "e:*"
	tagLen := len(b.prefix)
	if b.layout == LayoutSpread {
		match = globEscape(b.prefix[:len(b.prefix)-1]) + ":??\\}e:*"
		tagLen = len(b.buckets[0])
	}
	var mu sync.Mutex // ForEachMaster runs fn concurrently
	var fnErr error
	err := b.forEachNode(ctx, func(ctx context.Context, node goredis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, 512).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := b.listBatch(ctx, node, keys, tagLen, &mu, fn, &fnErr); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return b.wrap("list", "", err)
	}
	return nil
}

// listBatch reads the entries of rkeys (all on node) and reports them.
func (b *Backend) listBatch(ctx context.Context, node goredis.Cmdable, rkeys []string, tagLen int,
	mu *sync.Mutex, fn func(backends.EntryInfo) error, fnErr *error) error {
	// One GET per key, pipelined: in LayoutSpread the keys of one SCAN page
	// are in different slots, which one MGET cannot read.
	p := node.Pipeline()
	cmds := make([]*goredis.StringCmd, len(rkeys))
	for i, k := range rkeys {
		cmds[i] = p.Get(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range cmds {
		if *fnErr != nil {
			return *fnErr
		}
		s, err := c.Result()
		if err != nil {
			continue
		}
		e, ok := decode(s)
		if !ok || len(rkeys[i]) < tagLen+2 {
			continue
		}
		info := backends.EntryInfo{
			Key:     rkeys[i][tagLen+2:],
			Size:    int64(len(e.Payload)),
			Created: e.Created,
			Version: e.Version,
			Tags:    cloneStrings(e.Tags),
		}
		if err := fn(info); err != nil {
			*fnErr = err
			return err
		}
	}
	return nil
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
// the local tier's tracking connection, and closes the client if the
// backend opened it. Later calls return nil.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	// No read starts from now on; callers waiting for one get ErrClosed,
	// and the reads made for waiting callers end with the client below.
	b.reads.Close(backends.ErrClosed)
	if b.locker != nil {
		_ = b.locker.Close()
	}
	if b.local != nil {
		b.local.close()
	}
	var err error
	if b.owned {
		if cerr := b.client.Close(); cerr != nil {
			err = fmt.Errorf("redis backend: close: %w", cerr)
		}
	}
	b.reads.Wait()
	if b.local != nil {
		b.local.fills.Wait()
	}
	return err
}

// Entry encoding, format 2: magic "rc", the format byte 2, a flags byte
// (bit 0: Created is set), Created as big-endian int64 Unix seconds and
// uint32 nanoseconds (present only with bit 0), the version as a varint, the
// tag count as a uvarint and each tag as a uvarint length and its bytes,
// then the payload. Format 1 (written by earlier releases: Created as int64
// Unix nanoseconds, math.MinInt64 for the zero time, no flags byte) is still
// read.
const (
	magic0, magic1   = 'r', 'c'
	format1, format2 = 1, 2
	zeroCreated1     = math.MinInt64
)

func encode(e backends.Entry) []byte {
	n := 4 + 12 + binary.MaxVarintLen64 + binary.MaxVarintLen64 + len(e.Payload)
	for _, t := range e.Tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, magic0, magic1, format2)
	if e.Created.IsZero() {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		buf = binary.BigEndian.AppendUint64(buf, uint64(e.Created.Unix()))
		buf = binary.BigEndian.AppendUint32(buf, uint32(e.Created.Nanosecond()))
	}
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
	if len(s) < 4 || s[0] != magic0 || s[1] != magic1 {
		return e, false
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	var off int
	switch s[2] {
	case format1:
		if len(s) < 11 {
			return e, false
		}
		if created := int64(binary.BigEndian.Uint64(b[3:11])); created != zeroCreated1 {
			e.Created = time.Unix(0, created)
		}
		off = 11
	case format2:
		switch s[3] {
		case 0:
			off = 4
		case 1:
			if len(s) < 16 {
				return e, false
			}
			sec := int64(binary.BigEndian.Uint64(b[4:12]))
			nsec := binary.BigEndian.Uint32(b[12:16])
			if nsec >= 1e9 {
				return e, false
			}
			e.Created = time.Unix(sec, int64(nsec))
			off = 16
		default:
			return e, false
		}
	default:
		return e, false
	}
	v, n := binary.Varint(b[off:])
	if n <= 0 || int64(int(v)) != v {
		return backends.Entry{}, false
	}
	off += n
	nt, n := binary.Uvarint(b[off:])
	if n <= 0 || nt > uint64(len(b)-off) {
		return backends.Entry{}, false
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
	e.Version = int(v)
	e.Payload = b[off:len(b):len(b)]
	return e, true
}

// ReadOnlyPayloads implements backends.ReadOnlyPayloads: a payload points
// into the string go-redis returned (or the local tier's copy of it), which
// nothing changes.
func (b *Backend) ReadOnlyPayloads() bool { return true }
