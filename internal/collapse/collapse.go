// Package collapse merges concurrent reads of one key into few reads without
// ever handing a caller a result older than its call: a caller that arrives
// while a read of its key is in flight does not share that read (which may
// have been answered before the caller arrived, e.g. before a write the
// caller has seen) but waits for the next one, which starts only after the
// one in flight ends and serves every caller that arrived meanwhile. N
// concurrent callers of one key thus make at most two reads instead of N,
// each caller waits at most two reads, and every result a caller gets comes
// from a read that started after the caller did.
//
// It is for backends whose reads are round trips (Redis, memcached): a
// stampede of readers on one key in one process costs the server two
// requests, not one per caller.
package collapse

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
)

// stripes bounds the keys collapsed at once; a key whose stripe is busy with
// another key is read directly.
const stripes = 64

// Group collapses reads of type T. The zero value is ready to use; a Group
// must not be copied after first use.
type Group[T any] struct {
	once    sync.Once
	seed    maphash.Seed
	life    context.Context // ended by Close: the reads made for waiting callers
	end     context.CancelFunc
	stripes [stripes]stripe[T]
	wg      sync.WaitGroup // every read in progress
}

type stripe[T any] struct {
	mu     sync.Mutex
	busy   bool      // a read of key is in flight
	key    string    // the key being read while busy
	next   *batch[T] // callers that arrived during the read in flight
	closed error     // set by Close: what calls return from now on
}

// batch is the callers that share one read.
type batch[T any] struct {
	ctx  context.Context // the first caller's values, ended only by Close
	read func(context.Context) (T, error)
	done chan struct{} // closed when v and err are set
	n    int           // callers that joined (under the stripe's mutex)
	v    T
	err  error
}

func (g *Group[T]) init() {
	g.once.Do(func() {
		g.seed = maphash.MakeSeed()
		g.life, g.end = context.WithCancel(context.Background())
	})
}

// Do returns read's result for key: read run by this call, or by a read of
// key that started after this call did. read must not retain its context
// beyond its return. A read made for waiting callers runs without their
// cancellation, so that one caller leaving does not fail the others; Close
// ends it. A caller whose ctx ends while it waits returns ctx's error; the
// read goes on for the others. After Close, Do returns Close's error
// without reading.
func (g *Group[T]) Do(ctx context.Context, key string, read func(context.Context) (T, error)) (T, error) {
	g.init()
	var zero T
	st := &g.stripes[maphash.String(g.seed, key)%stripes]
	st.mu.Lock()
	if st.closed != nil {
		err := st.closed
		st.mu.Unlock()
		return zero, err
	}
	if !st.busy || st.key != key {
		// Read now: the stripe is free (this read leads), or taken by
		// another key (no collapsing for this call).
		lead := !st.busy
		if lead {
			st.busy, st.key = true, key
		}
		g.wg.Add(1)
		st.mu.Unlock()
		defer g.wg.Done()
		if lead {
			defer g.finish(st)
		}
		return read(ctx)
	}
	b := st.next
	if b == nil {
		b = &batch[T]{read: read, done: make(chan struct{})}
		b.ctx = mergeEnd(context.WithoutCancel(ctx), g.life)
		st.next = b
	}
	b.n++
	st.mu.Unlock()
	select {
	case <-b.done:
		return b.v, b.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// mergeEnd returns values' values with life's end.
func mergeEnd(values, life context.Context) context.Context {
	ctx, cancel := context.WithCancel(values)
	context.AfterFunc(life, cancel)
	return ctx
}

// finish ends the read in flight on st: the stripe is free again, or the
// callers that arrived meanwhile get a read of their own (or, once the
// Group is closed, its error).
func (g *Group[T]) finish(st *stripe[T]) {
	st.mu.Lock()
	b := st.next
	st.next = nil
	if b == nil {
		st.busy, st.key = false, ""
		st.mu.Unlock()
		return
	}
	if st.closed != nil {
		st.busy, st.key = false, ""
		b.err = st.closed
		st.mu.Unlock()
		close(b.done)
		return
	}
	// The stripe stays busy with the same key: callers arriving from now on
	// wait for the read after b's.
	g.wg.Add(1)
	st.mu.Unlock()
	go func() {
		defer g.wg.Done()
		defer g.finish(st)
		defer close(b.done)
		defer func() {
			if p := recover(); p != nil {
				var zero T
				b.v, b.err = zero, fmt.Errorf("collapse: read panicked: %v", p)
			}
		}()
		b.v, b.err = b.read(b.ctx)
	}()
}

// Close makes every later Do return err (which must not be nil) without
// reading, fails the callers waiting for a read that has not started with
// err, and ends the context of the reads made for waiting callers. It does
// not wait: a backend closes its client next (which ends the reads in
// flight), then calls Wait.
func (g *Group[T]) Close(err error) {
	g.init()
	for i := range g.stripes {
		st := &g.stripes[i]
		st.mu.Lock()
		st.closed = err
		b := st.next
		st.next = nil
		st.mu.Unlock()
		if b != nil {
			b.err = err
			close(b.done)
		}
	}
	g.end()
}

// Wait waits for every read in progress to end. After Close no new one
// starts, so a backend's Close that calls Close, closes its client and then
// Wait leaves no read of its behind.
func (g *Group[T]) Wait() { g.wg.Wait() }
