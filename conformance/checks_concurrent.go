package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// A concurrent value identifies its write: the key it was written under, the
// writer, the writer's sequence number, a body of a length and content
// derived from those, and a SHA-256 of everything before it. The entry's
// Version is the sequence number and its Tags name the writer, so that
// metadata from one write paired with the payload of another is caught too.
func concurrentValue(key string, writer, seq int) backends.Entry {
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s\x00%d\x00%d\x00", key, writer, seq)
	n := 16 + (writer*7919+seq*104729)%8192
	body := pattern(uint64(writer)<<32|uint64(seq), n)
	p := append(hdr.Bytes(), body...)
	sum := sha256.Sum256(p)
	p = append(p, sum[:]...)
	return backends.Entry{Payload: p, Created: time.Unix(1700000000, int64(seq)), Version: seq, Tags: []string{"w" + strconv.Itoa(writer)}}
}

// verifyConcurrent checks that got is intact and was written under key by
// one of the writers, with a sequence number that writer has reached.
func verifyConcurrent(key string, got backends.Entry, started []atomic.Int64) error {
	p := got.Payload
	if len(p) < sha256.Size {
		return fmt.Errorf("torn read: %d-byte payload is too short to be any writer's value", len(p))
	}
	data, sum := p[:len(p)-sha256.Size], p[len(p)-sha256.Size:]
	if s := sha256.Sum256(data); !bytes.Equal(s[:], sum) {
		return fmt.Errorf("torn read: %d-byte payload fails its checksum (a mix of writes or a partial write)", len(p))
	}
	parts := bytes.SplitN(data, []byte{0}, 4)
	if len(parts) != 4 {
		return errors.New("payload has no header: not a value any writer wrote")
	}
	if string(parts[0]) != key {
		return fmt.Errorf("read another key's value: the value was written under %s", qkey(string(parts[0])))
	}
	w, err1 := strconv.Atoi(string(parts[1]))
	seq, err2 := strconv.Atoi(string(parts[2]))
	if err1 != nil || err2 != nil || w < 0 || w >= len(started) || seq < 0 {
		return fmt.Errorf("payload header %q names no writer", data[:min(len(data), 40)])
	}
	if int64(seq) >= started[w].Load() {
		return fmt.Errorf("value claims to be write %d of writer %d, which has not made it yet", seq, w)
	}
	want := concurrentValue(key, w, seq)
	if !bytes.Equal(p, want.Payload) {
		return fmt.Errorf("payload of writer %d's write %d differs from what it wrote", w, seq)
	}
	if got.Version != want.Version || len(got.Tags) != 1 || got.Tags[0] != want.Tags[0] {
		return fmt.Errorf("metadata (version %d, tags %q) belongs to a different write than the payload (writer %d, write %d)",
			got.Version, got.Tags, w, seq)
	}
	return nil
}

// checkConcurrent runs writers, readers and deleters on a few overlapping
// keys at once. Every read must be a miss or a value some writer wrote for
// that very key, intact.
func checkConcurrent(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	return e.repeat(ctx, func(round int) error { return e.concurrentRound(ctx, b, round) })
}

func (e *env) concurrentRound(ctx context.Context, b backends.Backend, round int) error {
	const nkeys = 6
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("shared-%d-%d", round, i)
	}
	writers, ops := e.cfg.writers, e.cfg.ops
	started := make([]atomic.Int64, writers)
	var reads, hits atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < writers; w++ {
		wg.Add(2)
		e.goSafe(func() { // writer
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for seq := 0; seq < ops && ctx.Err() == nil; seq++ {
				k := keys[r.IntN(nkeys)]
				started[w].Store(int64(seq) + 1)
				var err error
				switch {
				case seq%17 == 16:
					err = b.Delete(ctx, k)
				case seq%5 == 4:
					k2 := keys[r.IntN(nkeys)]
					err = backends.SetMulti(ctx, b, []string{k, k2}, []backends.Entry{concurrentValue(k, w, seq), concurrentValue(k2, w, seq)})
				default:
					err = b.Set(ctx, k, concurrentValue(k, w, seq))
				}
				if err != nil && ctx.Err() == nil {
					fail(fmt.Errorf("writer %d, write %d to %s: %w", w, seq, qkey(k), err))
				}
			}
		})
		rd := w
		e.goSafe(func() { // reader
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(rd), 2))
			for i := 0; i < ops && ctx.Err() == nil; i++ {
				if i%7 == 6 {
					q := []string{keys[r.IntN(nkeys)], keys[r.IntN(nkeys)], "absent"}
					got, err := backends.GetMulti(ctx, b, q)
					if err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("reader %d: GetMulti: %w", rd, err))
						}
						return
					}
					if len(got) != len(q) {
						fail(fmt.Errorf("reader %d: GetMulti of %d keys returned %d results", rd, len(q), len(got)))
						return
					}
					for j, g := range got {
						reads.Add(1)
						if g == nil {
							continue
						}
						hits.Add(1)
						if err := verifyConcurrent(q[j], *g, started); err != nil {
							fail(fmt.Errorf("reader %d: GetMulti result %d (key %s): %w", rd, j, qkey(q[j]), err))
							return
						}
					}
					continue
				}
				k := keys[r.IntN(nkeys)]
				got, err := b.Get(ctx, k)
				reads.Add(1)
				if errors.Is(err, backends.ErrNotFound) {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("reader %d: Get(%s): %w", rd, qkey(k), err))
					}
					return
				}
				hits.Add(1)
				if e.discards() {
					fail(fmt.Errorf("reader %d: Get(%s) found an entry in a backend that declares discards", rd, qkey(k)))
					return
				}
				if err := verifyConcurrent(k, got, started); err != nil {
					fail(fmt.Errorf("reader %d: Get(%s): %w", rd, qkey(k), err))
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// After the writers stop, every key holds a value one of them wrote.
	for _, k := range keys {
		got, err := b.Get(ctx, k)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("after the run: Get(%s): %w", qkey(k), err)
		}
		if e.discards() {
			return fmt.Errorf("after the run: Get(%s) found an entry in a backend that declares discards", qkey(k))
		}
		if err := verifyConcurrent(k, got, started); err != nil {
			return fmt.Errorf("after the run: Get(%s): %w", qkey(k), err)
		}
		hits.Add(1)
	}
	// (Concurrent reads may all have run before a slow backend's first
	// write; the reads after the run count too.)
	if !e.discards() && hits.Load() == 0 {
		return fmt.Errorf("%d reads, during and after the run, were all misses: the writes were not seen", reads.Load()+int64(len(keys)))
	}
	return nil
}
