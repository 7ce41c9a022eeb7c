package conformance

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/regioncache/regioncache/backends"
)

func checkEmpty(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	for key, p := range map[string][]byte{"empty-nil": nil, "empty-slice": {}} {
		ent := newEntry(p, 1)
		if err := set(ctx, b, key, ent); err != nil {
			return err
		}
		if err := e.expect(ctx, b, key, ent); err != nil {
			return err
		}
	}
	return nil
}

func checkBinary(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	// Every byte value, then every byte value backwards, then bytes that
	// trip text handling: a lone CR, CRLF, NUL runs, invalid UTF-8.
	p := make([]byte, 0, 600)
	for i := 0; i < 256; i++ {
		p = append(p, byte(i))
	}
	for i := 255; i >= 0; i-- {
		p = append(p, byte(i))
	}
	p = append(p, "\r\n\r\x00\x00\x00\xff\xfe\xc0\x80\n"...)
	ent := newEntry(p, 2)
	if err := set(ctx, b, "binary", ent); err != nil {
		return err
	}
	if err := e.expect(ctx, b, "binary", ent); err != nil {
		return err
	}
	// One payload per byte value, so that a backend that trims or escapes
	// a single trailing byte is caught.
	for i := 0; i < 256; i++ {
		key := fmt.Sprintf("byte-%02x", i)
		ent := newEntry([]byte{byte(i)}, 2)
		if err := set(ctx, b, key, ent); err != nil {
			return err
		}
		if err := e.expect(ctx, b, key, ent); err != nil {
			return err
		}
	}
	return nil
}

func checkLarge(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	n := e.cfg.largeSize
	if int64(int(n)) != n {
		return skipf("large value size %d does not fit in memory on this platform", n)
	}
	// Only a digest of the value is kept while the backend holds it, so
	// that the suite adds one copy, not two, to what the backend uses.
	payload := pattern(uint64(n), int(n))
	sum := sha256.Sum256(payload)
	ent := newEntry(payload, 3, "large")
	if err := set(ctx, b, "large", ent); err != nil {
		return fmt.Errorf("%d-byte value: %w", n, err)
	}
	payload, ent.Payload = nil, nil
	if e.discards() {
		if err := expectMiss(ctx, b, "large", "a backend that declares discards keeps nothing"); err != nil {
			return err
		}
	} else {
		got, err := b.Get(ctx, "large")
		if err != nil {
			return fmt.Errorf("Get of the %d-byte value: %w", n, err)
		}
		if int64(len(got.Payload)) != n || sha256.Sum256(got.Payload) != sum {
			return fmt.Errorf("Get of the %d-byte value: %s", n, diffBytes(got.Payload, pattern(uint64(n), int(n))))
		}
		got.Payload = nil
		if err := e.sameEntry(got, ent); err != nil {
			return fmt.Errorf("Get of the %d-byte value: %w", n, err)
		}
	}
	// A small neighbour must not be disturbed by the large one.
	small := newEntry([]byte("small"), 3)
	if err := set(ctx, b, "small", small); err != nil {
		return err
	}
	if err := e.expect(ctx, b, "small", small); err != nil {
		return err
	}
	if err := del(ctx, b, "large"); err != nil {
		return err
	}
	return expectMiss(ctx, b, "large", "it was deleted")
}

// checkNoAlias: a backend that does not keep Go values must not retain the
// payload or tags slices it was given: the caller may reuse them.
func checkNoAlias(ctx context.Context, e *env) error {
	if e.has(FeatKeepsValues) {
		return skipf("backend declares keeps-values: it may keep the caller's slices")
	}
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	p := []byte("original payload")
	tags := []string{"t1", "t2"}
	ent := backends.Entry{Payload: p, Created: time.Now(), Version: 4, Tags: tags}
	want := ent
	want.Payload = append([]byte(nil), p...)
	want.Tags = append([]string(nil), tags...)
	if err := set(ctx, b, "alias", ent); err != nil {
		return err
	}
	copy(p, "CLOBBERED PAYLOA")
	tags[0] = "clobbered"
	if err := e.expect(ctx, b, "alias", want); err != nil {
		return fmt.Errorf("after the caller reused the slices it passed to Set: %w", err)
	}
	// (Callers must not modify the slices Get returns, so a backend may hand
	// out its own; that is not checked.)
	return nil
}

func checkMetadata(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	type value struct {
		N int
		S string
	}
	now := time.Now()
	cases := []backends.Entry{
		{Payload: []byte("now"), Created: now, Version: 1, Tags: []string{"a"}},
		{Payload: []byte("utc"), Created: time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC), Version: 0},
		{Payload: []byte("zone"), Created: time.Date(2030, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", -7*3600-1800)), Version: 1 << 40,
			Tags: []string{"b", "a", "b"}},
		{Payload: []byte("past"), Created: time.Date(1971, 1, 1, 0, 0, 0, 1, time.UTC), Version: -3,
			Tags: []string{"with space", "comma,separated", "ünïcödé", "new\nline", "slash/../tag", ""}},
		{Payload: []byte("value"), Value: &value{N: 42, S: "kept"}, Created: now.Add(-time.Hour), Version: 7, Tags: []string{}},
		{Payload: nil, Created: now.Add(time.Nanosecond), Version: 9, Tags: nil},
	}
	for i, ent := range cases {
		if err := set(ctx, b, fmt.Sprintf("meta-%d", i), ent); err != nil {
			return err
		}
	}
	for i, ent := range cases {
		if err := e.expect(ctx, b, fmt.Sprintf("meta-%d", i), ent); err != nil {
			return err
		}
	}
	// Created must come back monotonic-free and comparable: a second read
	// must give the same instant.
	if !e.discards() {
		g1, err1 := b.Get(ctx, "meta-0")
		g2, err2 := b.Get(ctx, "meta-0")
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if !g1.Created.Equal(g2.Created) {
			return fmt.Errorf("two reads of one entry gave Created %v and %v", g1.Created, g2.Created)
		}
	}
	return nil
}

func checkMiss(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	if err := expectMiss(ctx, b, "never-set", "nothing was stored under it in a fresh instance"); err != nil {
		return err
	}
	if err := set(ctx, b, "present", newEntry([]byte("x"), 1)); err != nil {
		return err
	}
	for _, k := range []string{"never-set", "presen", "present ", "Present", "present\x00"} {
		if err := expectMiss(ctx, b, k, "only \"present\" was stored"); err != nil {
			return err
		}
	}
	return nil
}

func checkOverwrite(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	// Large to small to large: a backend that overwrites a file in place
	// without truncating it is caught by the shrink.
	seq := []backends.Entry{
		newEntry(pattern(1, 64<<10), 1, "first"),
		newEntry([]byte("short"), 2, "second", "x"),
		newEntry(nil, 3),
		newEntry(pattern(2, 100<<10), 4, "fourth"),
	}
	for i, ent := range seq {
		if err := set(ctx, b, "key", ent); err != nil {
			return fmt.Errorf("write %d: %w", i+1, err)
		}
		if err := e.expect(ctx, b, "key", ent); err != nil {
			return fmt.Errorf("after write %d of %d: %w", i+1, len(seq), err)
		}
	}
	return nil
}

func checkDeletePresent(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	keep := newEntry([]byte("keep"), 1)
	if err := set(ctx, b, "keep", keep); err != nil {
		return err
	}
	for round := 1; round <= 2; round++ {
		if err := set(ctx, b, "doomed", newEntry([]byte("doomed"), round)); err != nil {
			return err
		}
		if err := del(ctx, b, "doomed"); err != nil {
			return err
		}
		if err := expectMiss(ctx, b, "doomed", fmt.Sprintf("it was deleted (round %d)", round)); err != nil {
			return err
		}
	}
	if err := e.expect(ctx, b, "keep", keep); err != nil {
		return fmt.Errorf("a neighbour of the deleted key: %w", err)
	}
	return nil
}

func checkDeleteAbsent(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	if err := del(ctx, b, "never-set"); err != nil {
		return fmt.Errorf("deleting an absent key must not be an error: %w", err)
	}
	if err := set(ctx, b, "once", newEntry([]byte("x"), 1)); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		if err := del(ctx, b, "once"); err != nil {
			return fmt.Errorf("delete %d of a key: %w", i+1, err)
		}
	}
	return expectMiss(ctx, b, "once", "it was deleted")
}
