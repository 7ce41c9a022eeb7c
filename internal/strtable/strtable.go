// Package strtable is a hash map from string keys to immutable values whose
// reads take no lock and write no shared memory, for the hit paths of caches
// kept in process (the memory backend, the Redis backend's local tier).
package strtable

import (
	"hash/maphash"
	"sync/atomic"
)

// Table is a hash map from string keys to immutable values whose reads take
// no lock and write no shared memory, so that hits on one hot key scale with
// the cores that read it. Writers (store, remove) must be serialised by the
// caller; readers may run at any time, concurrently with a writer, and see
// either the value before or after each write.
//
// Buckets are chains of immutable nodes published with atomic pointers. A
// write builds the bucket's new chain and publishes it with one store; a
// growth builds a new table of twice the buckets and publishes it with one
// store, while readers finish on the old one. Compared with sync.Map, whose
// keys are interfaces, a lookup hashes the string directly and compares it
// without an interface dispatch.
type Table[V any] struct {
	seed maphash.Seed
	cur  atomic.Pointer[buckets[V]]
	n    int // entries; writers only
}

type buckets[V any] struct {
	mask  uint64
	heads []atomic.Pointer[node[V]]
}

type node[V any] struct {
	hash uint64
	key  string
	val  *V
	next *node[V]
}

const minBuckets = 64

// New returns an empty table.
func New[V any]() *Table[V] {
	t := &Table[V]{seed: maphash.MakeSeed()}
	t.cur.Store(&buckets[V]{mask: minBuckets - 1, heads: make([]atomic.Pointer[node[V]], minBuckets)})
	return t
}

// Load returns the value stored under key, or nil.
func (t *Table[V]) Load(key string) *V {
	h := maphash.String(t.seed, key)
	b := t.cur.Load()
	for n := b.heads[h&b.mask].Load(); n != nil; n = n.next {
		if n.hash == h && n.key == key {
			return n.val
		}
	}
	return nil
}

// Store sets key's value to v (non-nil) and returns the value it replaces,
// or nil. The caller serialises writers.
func (t *Table[V]) Store(key string, v *V) *V {
	h := maphash.String(t.seed, key)
	b := t.cur.Load()
	head := &b.heads[h&b.mask]
	old := head.Load()
	for n := old; n != nil; n = n.next {
		if n.hash == h && n.key == key {
			prev := n.val
			chain, _ := without(old, h, key)
			head.Store(&node[V]{hash: h, key: key, val: v, next: chain})
			return prev
		}
	}
	head.Store(&node[V]{hash: h, key: key, val: v, next: old})
	t.n++
	if t.n > 2*len(b.heads) {
		t.grow(b)
	}
	return nil
}

// Remove deletes key and returns its value, or nil if it was absent. The
// caller serialises writers.
func (t *Table[V]) Remove(key string) *V {
	h := maphash.String(t.seed, key)
	b := t.cur.Load()
	head := &b.heads[h&b.mask]
	old := head.Load()
	var found *V
	for n := old; n != nil; n = n.next {
		if n.hash == h && n.key == key {
			found = n.val
			break
		}
	}
	if found == nil {
		return nil
	}
	chain, _ := without(old, h, key)
	head.Store(chain)
	t.n--
	return found
}

// without returns the chain from n without key's node (new nodes for those
// in front of it, the tail shared), and whether key was in it.
func without[V any](n *node[V], h uint64, key string) (*node[V], bool) {
	if n == nil {
		return nil, false
	}
	if n.hash == h && n.key == key {
		return n.next, true
	}
	rest, ok := without(n.next, h, key)
	if !ok {
		return n, false
	}
	return &node[V]{hash: n.hash, key: n.key, val: n.val, next: rest}, true
}

// Len returns the number of entries. Writers only (or with writers
// serialised against it).
func (t *Table[V]) Len() int { return t.n }

// grow publishes a table of twice b's buckets holding the same entries.
func (t *Table[V]) grow(b *buckets[V]) {
	nb := &buckets[V]{mask: uint64(2*len(b.heads)) - 1, heads: make([]atomic.Pointer[node[V]], 2*len(b.heads))}
	for i := range b.heads {
		for n := b.heads[i].Load(); n != nil; n = n.next {
			head := &nb.heads[n.hash&nb.mask]
			head.Store(&node[V]{hash: n.hash, key: n.key, val: n.val, next: head.Load()})
		}
	}
	t.cur.Store(nb)
}

// Range calls fn for each entry of one snapshot of the table until fn
// returns false. Writes during the walk may or may not be seen.
func (t *Table[V]) Range(fn func(key string, v *V) bool) {
	b := t.cur.Load()
	for i := range b.heads {
		for n := b.heads[i].Load(); n != nil; n = n.next {
			if !fn(n.key, n.val) {
				return
			}
		}
	}
}

// Clear removes every entry. The caller serialises writers.
func (t *Table[V]) Clear() {
	t.cur.Store(&buckets[V]{mask: minBuckets - 1, heads: make([]atomic.Pointer[node[V]], minBuckets)})
	t.n = 0
}
