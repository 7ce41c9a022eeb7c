package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// qkey quotes a key for a message, shortening long keys.
func qkey(k string) string {
	if len(k) > 48 {
		return strconv.Quote(k[:40]) + fmt.Sprintf("...(%d bytes)", len(k))
	}
	return strconv.Quote(k)
}

// pattern returns n pseudo-random bytes determined by seed (xorshift64*).
// It fills eight bytes at a time so that 64 MiB is cheap even under -race.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	i := 0
	for ; i+8 <= n; i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		binary.LittleEndian.PutUint64(b[i:], x*0x2545F4914F6CDD1D)
	}
	for ; i < n; i++ {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		b[i] = byte(x * 0x2545F4914F6CDD1D)
	}
	return b
}

// diffBytes describes how got differs from want without printing either
// (they may be 64 MiB).
func diffBytes(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("payload has %d bytes, want %d", len(got), len(want))
	}
	if bytes.Equal(got, want) {
		return ""
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("payload differs first at byte %d of %d: got 0x%02x, want 0x%02x", i, len(want), got[i], want[i])
		}
	}
	return ""
}

// newEntry returns an entry with a payload and full metadata.
func newEntry(payload []byte, version int, tags ...string) backends.Entry {
	return backends.Entry{Payload: payload, Created: time.Now(), Version: version, Tags: tags}
}

// sameEntry reports how got differs from want: payload, Created (to
// precision), Version, Tags and, for a backend that keeps values, Value.
func (e *env) sameEntry(got, want backends.Entry) error {
	if d := diffBytes(got.Payload, want.Payload); d != "" {
		return errors.New(d)
	}
	if err := e.sameCreated(got.Created, want.Created); err != nil {
		return err
	}
	if got.Version != want.Version {
		return fmt.Errorf("entry Version is %d, want %d", got.Version, want.Version)
	}
	if !(len(got.Tags) == 0 && len(want.Tags) == 0) && !slices.Equal(got.Tags, want.Tags) {
		return fmt.Errorf("entry Tags are %s, want %s", qtags(got.Tags), qtags(want.Tags))
	}
	if e.has(FeatKeepsValues) && !reflect.DeepEqual(got.Value, want.Value) {
		return fmt.Errorf("entry Value is %#v, want %#v (the backend declares keeps-values)", got.Value, want.Value)
	}
	return nil
}

func (e *env) sameCreated(got, want time.Time) error {
	p := e.h.CreatedPrecision
	if p <= 0 {
		if !got.Equal(want) {
			return fmt.Errorf("entry Created is %s, want %s (to the nanosecond; set Harness.CreatedPrecision if the backend keeps less)",
				got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
		return nil
	}
	d := got.Sub(want)
	if d < 0 {
		d = -d
	}
	if d >= p {
		return fmt.Errorf("entry Created is %s, want %s to within the declared precision %v",
			got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano), p)
	}
	return nil
}

func set(ctx context.Context, b backends.Backend, key string, ent backends.Entry) error {
	if err := b.Set(ctx, key, ent); err != nil {
		return fmt.Errorf("Set(%s): %w", qkey(key), err)
	}
	return nil
}

func del(ctx context.Context, b backends.Backend, key string) error {
	if err := b.Delete(ctx, key); err != nil {
		return fmt.Errorf("Delete(%s): %w", qkey(key), err)
	}
	return nil
}

// expect reads key and compares it with want. For a backend that declares
// backends.Discarder the read must instead be a miss.
func (e *env) expect(ctx context.Context, b backends.Backend, key string, want backends.Entry) error {
	if e.discards() {
		return expectMiss(ctx, b, key, "a backend that declares discards keeps nothing")
	}
	got, err := b.Get(ctx, key)
	if errors.Is(err, backends.ErrNotFound) {
		return fmt.Errorf("Get(%s) after Set: miss (%v), want the entry", qkey(key), err)
	}
	if err != nil {
		return fmt.Errorf("Get(%s): %w", qkey(key), err)
	}
	if err := e.sameEntry(got, want); err != nil {
		return fmt.Errorf("Get(%s): %w", qkey(key), err)
	}
	return nil
}

// expectMiss reads key and requires errors.Is(err, backends.ErrNotFound).
func expectMiss(ctx context.Context, b backends.Backend, key, why string) error {
	got, err := b.Get(ctx, key)
	if err == nil {
		return fmt.Errorf("Get(%s) found an entry (%d-byte payload, version %d), want a miss: %s",
			qkey(key), len(got.Payload), got.Version, why)
	}
	if !errors.Is(err, backends.ErrNotFound) {
		return fmt.Errorf("Get(%s) returned %q, want an error wrapping backends.ErrNotFound (%s)", qkey(key), err, why)
	}
	return nil
}

// plain hides every optional interface of a backend, so that the helpers in
// package backends take their one-key-at-a-time fallbacks.
type plain struct{ b backends.Backend }

func (p plain) Get(ctx context.Context, k string) (backends.Entry, error) { return p.b.Get(ctx, k) }
func (p plain) Set(ctx context.Context, k string, e backends.Entry) error { return p.b.Set(ctx, k, e) }
func (p plain) Delete(ctx context.Context, k string) error                { return p.b.Delete(ctx, k) }
func (p plain) Close() error                                              { return p.b.Close() }

// qtags quotes a tag list for a message, shortening long lists.
func qtags(tags []string) string {
	if len(tags) <= 8 {
		return fmt.Sprintf("%q", tags)
	}
	return fmt.Sprintf("%q ... (%d tags in all)", tags[:8], len(tags))
}
