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
	seedOnce sync.Once
	seed     maphash.Seed
	stripes  [stripes]stripe[T]
	wg       sync.WaitGroup // reads running on behalf of waiting callers
}

type stripe[T any] struct {
	mu   sync.Mutex
	busy bool      // a read of key is in flight
	key  string    // the key being read while busy
	next *batch[T] // callers that arrived during the read in flight
}

// batch is the callers that share one read.
type batch[T any] struct {
	ctx  context.Context // the first caller's, without its cancellation
	read func(context.Context) (T, error)
	done chan struct{} // closed when v and err are set
	n    int           // callers that joined (under the stripe's mutex)
	v    T
	err  error
}

// Do returns read's result for key: read run by this call, or by a read of
// key that started after this call did. read must not retain its context
// beyond its return, and must end on its own (bounded by the client's
// timeouts): a read made for waiting callers runs without their
// cancellation, so that one caller leaving does not fail the others. A
// caller whose ctx ends while it waits returns ctx's error; the read goes on
// for the others.
func (g *Group[T]) Do(ctx context.Context, key string, read func(context.Context) (T, error)) (T, error) {
	g.seedOnce.Do(func() { g.seed = maphash.MakeSeed() })
	st := &g.stripes[maphash.String(g.seed, key)%stripes]
	st.mu.Lock()
	if !st.busy {
		st.busy, st.key = true, key
		st.mu.Unlock()
		defer g.finish(st)
		return read(ctx)
	}
	if st.key != key {
		// The stripe is taken by another key: no collapsing for this call.
		st.mu.Unlock()
		return read(ctx)
	}
	b := st.next
	if b == nil {
		b = &batch[T]{ctx: context.WithoutCancel(ctx), read: read, done: make(chan struct{})}
		st.next = b
	}
	b.n++
	st.mu.Unlock()
	select {
	case <-b.done:
		return b.v, b.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// finish ends the read in flight on st: the stripe is free again, or the
// callers that arrived meanwhile get a read of their own.
func (g *Group[T]) finish(st *stripe[T]) {
	st.mu.Lock()
	b := st.next
	st.next = nil
	if b == nil {
		st.busy, st.key = false, ""
		st.mu.Unlock()
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

// Wait waits for the reads made on behalf of waiting callers to end. A
// backend's Close calls it after closing its client, so that no read of its
// outlives it.
func (g *Group[T]) Wait() { g.wg.Wait() }
