package region_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// reusingBuffer is a backend that hands every Get the same buffer, refilled
// with the entry asked for: legal for a backend that does not declare
// ReadOnlyPayloads.
type reusingBuffer struct {
	mu  sync.Mutex
	m   map[string]backends.Entry
	buf []byte
}

// stored returns k's entry as stored; the caller holds b.mu.
func (b *reusingBuffer) stored(k string) (backends.Entry, error) {
	e, ok := b.m[k]
	if !ok {
		return backends.Entry{}, backends.ErrNotFound
	}
	return e, nil
}

func (b *reusingBuffer) Get(_ context.Context, k string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.stored(k)
	if err == nil {
		b.buf = append(b.buf[:0], e.Payload...)
		e.Payload = b.buf
	}
	return e, err
}

func (b *reusingBuffer) Set(_ context.Context, k string, e backends.Entry) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e.Payload = append([]byte(nil), e.Payload...)
	b.m[k] = e
	return nil
}

func (b *reusingBuffer) Delete(_ context.Context, k string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, k)
	return nil
}

func (b *reusingBuffer) Close() error { return nil }

// readOnly is a backend whose payloads are never changed after Get, and
// says so.
type readOnly struct{ reusingBuffer }

func (b *readOnly) Get(_ context.Context, k string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stored(k) // the stored copy, never changed
}

func (b *readOnly) ReadOnlyPayloads() bool { return true }

// A string value read from a backend that reuses its buffers keeps its
// bytes when the backend refills the buffer: undeclared, the region copies.
func TestStringValuesSurviveReusedBuffers(t *testing.T) {
	ctx := context.Background()
	r := region.New()
	if err := r.ConfigureBackend(&reusingBuffer{m: map[string]backends.Entry{}}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, k := range []string{"a", "b"} {
		if err := region.Set(ctx, r, k, "value of "+k); err != nil {
			t.Fatal(err)
		}
	}
	va, err := region.Get[string](ctx, r, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := region.Get[string](ctx, r, "b"); err != nil { // refills the buffer
		t.Fatal(err)
	}
	if va != "value of a" {
		t.Fatalf("a string value changed when the backend reused its buffer: %q", va)
	}
}

// A backend that declares ReadOnlyPayloads has its payloads handed to
// callers as strings without a copy (the hit of a local tier needs no
// allocation); through a Proxy, which does not pass the declaration on, the
// region copies again.
func TestReadOnlyPayloadsAreNotCopied(t *testing.T) {
	ctx := context.Background()
	be := &readOnly{reusingBuffer{m: map[string]backends.Entry{}}}
	be.m["k"] = backends.Entry{Payload: []byte("shared bytes"), Created: time.Now()}
	stored := unsafe.SliceData(be.m["k"].Payload)
	for _, proxied := range []bool{false, true} {
		var b backends.Backend = be
		if proxied {
			b = backends.Proxy{Next: be}
		}
		r := region.New()
		if err := r.ConfigureBackend(b); err != nil {
			t.Fatal(err)
		}
		v, err := region.Get[string](ctx, r, "k")
		if err != nil || v != "shared bytes" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		if aliased := unsafe.StringData(v) == stored; aliased == proxied {
			t.Errorf("proxied %v: value shares the backend's bytes: %v", proxied, aliased)
		}
		create := func(context.Context) (string, error) { return "", errors.New("creator ran on a hit") }
		allocs := testing.AllocsPerRun(100, func() { _, _ = region.GetOrCreate(ctx, r, "k", create) })
		if !proxied && allocs != 0 {
			t.Errorf("a GetOrCreate hit of a read-only payload allocates %v times", allocs)
		}
		r.Close()
	}
}
