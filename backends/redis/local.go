package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/collapse"
	"github.com/regioncache/regioncache/internal/strtable"
)

// LocalCacheOptions bound the local tier (argument local_cache). At least
// one bound must be positive.
type LocalCacheOptions struct {
	// MaxEntries is the most entries kept in process (0: no bound by count).
	MaxEntries int
	// MaxBytes is the most payload bytes kept in process (0: no bound by
	// size).
	MaxBytes int64
}

// invalidateChannel is where Redis sends tracking invalidations to a RESP2
// connection that redirected them to itself.
const invalidateChannel = "__redis__:invalidate"

// localTier keeps decoded entries in process and drops them when Redis says
// their keys changed. Redis server-assisted client-side caching in
// broadcasting mode (CLIENT TRACKING ... BCAST PREFIX) announces every change
// of a key under the backend's entry prefixes — writes and deletes by any
// client, expiries, evictions, FLUSHALL — on one dedicated connection, which
// redirects the invalidations to itself and receives them as Pub/Sub
// messages. The tier serves entries only while that connection is up and
// tracking; when it drops, everything kept is forgotten, and nothing is kept
// until tracking is confirmed again.
//
// A read that misses fetches from Redis and keeps the result only if no
// invalidation of its key (or flush) was processed meanwhile: invalidations
// and fills of a key serialize on one of 64 stripes, and each stripe counts
// its invalidations.
type localTier struct {
	tc  *goredis.Client
	ps  *goredis.PubSub
	ttl time.Duration // the backend's storage TTL, mirrored locally

	m       *strtable.Table[localEntry] // region key -> entry; reads take no lock
	wmu     sync.Mutex                  // serialises m's writers
	fills   collapse.Group[localEntry]  // concurrent misses of a key share reads
	connsMu sync.Mutex
	conns   []net.Conn // the tracking client's connections, closed by close
	n       atomic.Int64
	bytes   atomic.Int64
	maxN    int64
	maxB    int64
	live    atomic.Bool
	stripes [64]stripe

	strip      func(rkey string) (string, bool) // Redis entry key -> region key
	stop       chan struct{}                    // closed by close
	done       chan struct{}                    // closed when receive returns
	closedFlag atomic.Bool
	once       sync.Once
}

type stripe struct {
	mu  sync.Mutex
	gen uint64
}

type localEntry struct {
	e     backends.Entry
	until int64 // Unix ns after which the entry is not served; 0: never
	size  int64
}

// newLocalTier starts the tracking connection for b's keys. client must be a
// *goredis.Client (one server, or a Sentinel master through a failover
// client).
func newLocalTier(client goredis.UniversalClient, opts LocalCacheOptions) (*localTier, error) {
	c, ok := client.(*goredis.Client)
	if !ok {
		return nil, fmt.Errorf("%w: local_cache: needs one Redis server or a Sentinel master; "+
			"Redis Cluster is not supported (invalidations would have to be tracked on every node), got a %T client",
			backends.ErrBadArgument, client)
	}
	if opts.MaxEntries < 0 || opts.MaxBytes < 0 || (opts.MaxEntries == 0 && opts.MaxBytes == 0) {
		return nil, fmt.Errorf("%w: local_cache: want a positive number of entries or bytes, got %d entries, %d bytes",
			backends.ErrBadArgument, opts.MaxEntries, opts.MaxBytes)
	}
	return &localTier{
		tc:   c,
		m:    strtable.New[localEntry](),
		maxN: int64(opts.MaxEntries),
		maxB: opts.MaxBytes,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}, nil
}

// start opens the tracking connection for the given entry-key prefixes.
func (t *localTier) start(prefixes []string, strip func(string) (string, bool), ttl time.Duration) {
	t.strip, t.ttl = strip, ttl
	o := *t.tc.Options()
	o.Protocol = 2 // invalidations as Pub/Sub messages on the connection itself
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 1
	o.OnConnect = func(ctx context.Context, cn *goredis.Conn) error {
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		args := []any{"client", "tracking", "on", "redirect", id, "bcast"}
		for _, p := range prefixes {
			args = append(args, "prefix", p)
		}
		return cn.Do(ctx, args...).Err()
	}
	// Every connection the tracking client dials is remembered, so that
	// close can end one still being set up (go-redis holds the Pub/Sub's
	// lock during the set-up, until its own timeouts against a stalled
	// server).
	dial := o.Dialer
	if dial == nil {
		d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 5 * time.Minute}
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			t.connsMu.Lock()
			if t.closedFlag.Load() {
				c.Close()
				err = net.ErrClosed
			} else {
				// The client keeps at most two at a time (its pool of one and
				// the Pub/Sub's); older ones are closed already.
				t.conns = append(t.conns[max(0, len(t.conns)-3):], c)
			}
			t.connsMu.Unlock()
		}
		return c, err
	}
	tc := goredis.NewClient(&o)
	t.tc = tc
	t.ps = tc.Subscribe(context.Background())
	go t.receive()
}

// Liveness of the tracking connection: after trackIdle without a message a
// PING is sent; if nothing (not even its PONG) arrives within another
// trackIdle, the connection is presumed stalled or half-open, and the tier
// stops serving (and forgets everything) until traffic resumes. So a tier
// whose invalidations stopped arriving serves for at most about twice
// trackIdle more.
const trackIdle = 250 * time.Millisecond

// receive processes the tracking connection's messages until close.
func (t *localTier) receive() {
	defer close(t.done)
	ctx := context.Background()
	backoff := 50 * time.Millisecond
	subscribed := false
	pinged := false // a PING is outstanding
	for {
		if !subscribed {
			if err := t.ps.Subscribe(ctx, invalidateChannel); err != nil {
				if !t.pause(backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			subscribed = true
		}
		msg, err := t.ps.ReceiveTimeout(ctx, trackIdle)
		if err != nil {
			if t.closed() {
				return
			}
			var te interface{ Timeout() bool }
			if errors.As(err, &te) && te.Timeout() {
				if pinged {
					// No answer for a whole period: invalidations may be
					// stuck. Serve nothing kept until traffic resumes (the
					// connection is ordered: once its PONG arrives, every
					// invalidation sent before it has been processed).
					t.live.Store(false)
					t.flush()
				}
				if err := t.ps.Ping(ctx); err == nil {
					pinged = true
					continue
				}
			}
			// Invalidations may have been lost: serve nothing kept so far.
			t.live.Store(false)
			t.flush()
			pinged = false
			if !t.pause(backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == invalidateChannel {
				// Tracking was switched on by OnConnect before this
				// (re)subscription: from now on every change is announced.
				pinged = false
				t.flush()
				t.live.Store(true)
			}
		case *goredis.Pong:
			if pinged {
				pinged = false
				t.live.Store(true) // nothing was lost: the stream is ordered
			}
		case *goredis.Message:
			if m.Channel != invalidateChannel {
				continue
			}
			if len(m.PayloadSlice) == 0 && m.Payload == "" {
				t.flush() // a null invalidation: FLUSHALL / FLUSHDB
				continue
			}
			if m.Payload != "" {
				t.invalidateRedisKey(m.Payload)
			}
			for _, rk := range m.PayloadSlice {
				t.invalidateRedisKey(rk)
			}
		}
	}
}

func (t *localTier) pause(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return !t.closed()
	case <-t.stop:
		return false
	}
}

func (t *localTier) closed() bool { return t.closedFlag.Load() }

func (t *localTier) invalidateRedisKey(rk string) {
	if key, ok := t.strip(rk); ok {
		t.forget(key)
	}
}

func (t *localTier) stripeOf(key string) *stripe {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &t.stripes[h%uint32(len(t.stripes))]
}

// forget drops key from the tier; a fill of key racing with it keeps
// nothing.
func (t *localTier) forget(key string) {
	st := t.stripeOf(key)
	st.mu.Lock()
	st.gen++
	t.remove(key)
	st.mu.Unlock()
}

func (t *localTier) remove(key string) {
	t.wmu.Lock()
	le := t.m.Remove(key)
	t.wmu.Unlock()
	if le != nil {
		t.n.Add(-1)
		t.bytes.Add(-le.size)
	}
}

// keys returns a snapshot of the tier's keys.
func (t *localTier) keys() []string {
	var ks []string
	t.m.Range(func(k string, _ *localEntry) bool {
		ks = append(ks, k)
		return true
	})
	return ks
}

// flush forgets everything; fills in progress keep nothing.
func (t *localTier) flush() {
	for i := range t.stripes {
		st := &t.stripes[i]
		st.mu.Lock()
		st.gen++
		st.mu.Unlock()
	}
	for _, k := range t.keys() {
		t.remove(k)
	}
}

// lookup returns key's entry if the tier may serve it.
func (t *localTier) lookup(key string) (*backends.Entry, bool) {
	if !t.live.Load() {
		return nil, false
	}
	le := t.m.Load(key)
	if le == nil {
		return nil, false
	}
	if le.until != 0 && time.Now().UnixNano() >= le.until {
		t.forget(key)
		return nil, false
	}
	e := le.e // the caller gets its own Entry; the payload is shared and read-only
	return &e, true
}

// get serves key from the tier, or reads it from Redis and keeps it.
func (t *localTier) get(ctx context.Context, b *Backend, key string) (backends.Entry, error) {
	live := t.live.Load()
	if le := t.m.Load(key); live && le != nil {
		if le.until == 0 || time.Now().UnixNano() < le.until {
			return le.e, nil
		}
		t.forget(key)
	}
	st := t.stripeOf(key)
	st.mu.Lock()
	gen := st.gen
	st.mu.Unlock()
	// Concurrent misses of key share reads (none older than its caller).
	r, err := t.fills.Do(ctx, key, func(ctx context.Context) (localEntry, error) {
		return t.fetch(ctx, b, key)
	})
	if err != nil {
		return backends.Entry{}, err
	}
	e, until := r.e, r.until
	if !live {
		return e, nil // tracking is not confirmed: nothing is kept
	}
	le := &localEntry{e: e, until: until, size: int64(len(e.Payload)) + int64(len(key))}
	st.mu.Lock()
	if st.gen == gen && t.live.Load() {
		t.wmu.Lock()
		old := t.m.Store(key, le)
		t.wmu.Unlock()
		if old != nil {
			t.bytes.Add(-old.size)
		} else {
			t.n.Add(1)
		}
		t.bytes.Add(le.size)
	}
	st.mu.Unlock()
	t.evict()
	return e, nil
}

// fetch reads key's entry from Redis, with (when the backend has a storage
// TTL) the time until which it may be served locally.
func (t *localTier) fetch(ctx context.Context, b *Backend, key string) (localEntry, error) {
	if t.ttl <= 0 {
		e, err := b.readRemote(ctx, key)
		return localEntry{e: e}, err
	}
	// The key's remaining TTL bounds how long it is served locally (Redis
	// announces expiries only when it notices them).
	start := time.Now()
	p := b.client.Pipeline()
	g := p.Get(ctx, b.entryKey(key))
	pt := p.PTTL(ctx, b.entryKey(key))
	if _, perr := p.Exec(ctx); perr != nil && !errors.Is(perr, goredis.Nil) {
		return localEntry{}, b.wrap("get", key, perr)
	}
	s, gerr := g.Result()
	if gerr != nil {
		if errors.Is(gerr, goredis.Nil) {
			return localEntry{}, backends.ErrNotFound
		}
		return localEntry{}, b.wrap("get", key, gerr)
	}
	e, ok := decode(s)
	if !ok {
		return localEntry{}, fmt.Errorf("%w: corrupt entry for %s", backends.ErrNotFound, shortKey(key))
	}
	var until int64
	if d := pt.Val(); d > 0 {
		until = start.Add(d).UnixNano()
	}
	return localEntry{e: e, until: until}, nil
}

// evict drops entries (in the map's random order) until the tier is within
// its bounds.
func (t *localTier) evict() {
	over := func() bool {
		return (t.maxN > 0 && t.n.Load() > t.maxN) || (t.maxB > 0 && t.bytes.Load() > t.maxB)
	}
	if !over() {
		return
	}
	t.m.Range(func(k string, _ *localEntry) bool {
		t.forget(k)
		return over()
	})
}

// close stops the tracking connection.
func (t *localTier) close() {
	t.once.Do(func() {
		t.closedFlag.Store(true)
		t.live.Store(false)
		t.fills.Close(backends.ErrClosed) // the backend's Close waits for them
		close(t.stop)
		if t.ps != nil {
			// The connections first: one the Pub/Sub is still setting up
			// holds its lock until go-redis's timeouts against a stalled
			// server.
			t.connsMu.Lock()
			for _, c := range t.conns {
				_ = c.Close()
			}
			t.conns = nil
			t.connsMu.Unlock()
			_ = t.ps.Close()
			<-t.done
			_ = t.tc.Close()
		}
		t.flush()
	})
}
