package conformance

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// checkReadOnlyPayloads: a backend that declares backends.ReadOnlyPayloads
// never changes a payload after Get returned it — not when the key is read
// again, overwritten (with a payload of the same length, which a reused
// buffer would take), deleted and written again, when other keys are read
// and written, nor after Close (a store that hands out slices of a mapping
// it unmaps). A region hands such payloads' bytes to callers as strings
// without copying them, so a change would change values callers hold.
func checkReadOnlyPayloads(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	if e.discards() {
		return nil // every Get is a miss: no payload to hold
	}
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 4096) }
	const n = 8
	held := make([][]byte, n)
	for i := range n {
		if err := set(ctx, b, fmt.Sprint("ro-", i), backends.Entry{Payload: payload(i), Created: time.Now()}); err != nil {
			return err
		}
		got, err := b.Get(ctx, fmt.Sprint("ro-", i))
		if err != nil {
			return fmt.Errorf("get ro-%d: %w", i, err)
		}
		held[i] = got.Payload
	}
	// Churn: reads, same-length overwrites, deletes and rewrites of the same
	// keys and of others.
	for round := 1; round <= 3; round++ {
		for i := range n {
			k := fmt.Sprint("ro-", i)
			if _, err := b.Get(ctx, k); err != nil {
				return fmt.Errorf("get %s: %w", k, err)
			}
			if err := set(ctx, b, k, backends.Entry{Payload: payload(i + round), Created: time.Now()}); err != nil {
				return err
			}
			if _, err := b.Get(ctx, k); err != nil {
				return fmt.Errorf("get %s: %w", k, err)
			}
			if err := b.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete %s: %w", k, err)
			}
			if err := set(ctx, b, k, backends.Entry{Payload: payload(i + 3*round), Created: time.Now()}); err != nil {
				return err
			}
			if err := set(ctx, b, fmt.Sprint("ro-other-", i), backends.Entry{Payload: payload(i + 2*round), Created: time.Now()}); err != nil {
				return err
			}
			if _, err := b.Get(ctx, fmt.Sprint("ro-other-", i)); err != nil {
				return fmt.Errorf("get ro-other-%d: %w", i, err)
			}
		}
	}
	changed := func(when string) error {
		for i, p := range held {
			if !bytes.Equal(p, payload(i)) {
				return fmt.Errorf("declares ReadOnlyPayloads, but the payload Get returned for ro-%d changed %s (now starts %q)", i, when, p[:min(len(p), 16)])
			}
		}
		return nil
	}
	if err := changed("after later calls"); err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return changed("after Close")
}
