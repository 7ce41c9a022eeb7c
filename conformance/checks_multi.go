package conformance

import (
	"context"
	"errors"
	"fmt"

	"github.com/regioncache/regioncache/backends"
)

// multiOps are the multi-key operations under test: the helpers of package
// backends (native or fallback) or the backend's own methods.
type multiOps struct {
	get func(ctx context.Context, keys []string) ([]*backends.Entry, error)
	set func(ctx context.Context, keys []string, es []backends.Entry) error
	del func(ctx context.Context, keys []string) error
}

func helperOps(b backends.Backend) multiOps {
	return multiOps{
		get: func(ctx context.Context, keys []string) ([]*backends.Entry, error) {
			return backends.GetMulti(ctx, b, keys)
		},
		set: func(ctx context.Context, keys []string, es []backends.Entry) error {
			return backends.SetMulti(ctx, b, keys, es)
		},
		del: func(ctx context.Context, keys []string) error { return backends.DeleteMulti(ctx, b, keys) },
	}
}

// checkMultiFallback runs the multi-key scenario through the one-key-at-a-time
// fallbacks of package backends, as a region does for a backend without
// native multi operations.
func checkMultiFallback(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	return e.multiScenario(ctx, b, helperOps(plain{b}))
}

// checkMultiHelpers runs it through backends.GetMulti and friends on the
// backend itself: native operations if it declares multi, else the fallback.
func checkMultiHelpers(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	return e.multiScenario(ctx, b, helperOps(b))
}

func checkMultiNative(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	mg, ok1 := b.(backends.MultiGetter)
	ms, ok2 := b.(backends.MultiSetter)
	md, ok3 := b.(backends.MultiDeleter)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("backend declares multi but implements MultiGetter %v, MultiSetter %v, MultiDeleter %v", ok1, ok2, ok3)
	}
	if err := e.multiScenario(ctx, b, multiOps{get: mg.GetMulti, set: ms.SetMulti, del: md.DeleteMulti}); err != nil {
		return err
	}
	if err := ms.SetMulti(ctx, []string{"a", "b"}, []backends.Entry{newEntry(nil, 1)}); err == nil {
		return errors.New("SetMulti with 2 keys and 1 entry succeeded, want an error")
	}
	return nil
}

func (e *env) multiScenario(ctx context.Context, b backends.Backend, m multiOps) error {
	// Empty batches are no-ops.
	got, err := m.get(ctx, nil)
	if err != nil {
		return fmt.Errorf("GetMulti of no keys: %w", err)
	}
	if len(got) != 0 {
		return fmt.Errorf("GetMulti of no keys returned %d results", len(got))
	}
	if err := m.set(ctx, nil, nil); err != nil {
		return fmt.Errorf("SetMulti of no keys: %w", err)
	}
	if err := m.del(ctx, nil); err != nil {
		return fmt.Errorf("DeleteMulti of no keys: %w", err)
	}

	keys := []string{"m0", "m1", "m2", "m3", "m4", "m5"}
	want := map[string]backends.Entry{}
	var es []backends.Entry
	for i, k := range keys {
		ent := newEntry(pattern(uint64(i+100), 10+i*97), i+1, fmt.Sprintf("tag-%d", i%2))
		es = append(es, ent)
		want[k] = ent
	}
	if err := m.set(ctx, keys, es); err != nil {
		return fmt.Errorf("SetMulti: %w", err)
	}
	// Single-key reads see what a multi write stored.
	for _, k := range keys {
		if err := e.expect(ctx, b, k, want[k]); err != nil {
			return fmt.Errorf("after SetMulti: %w", err)
		}
	}
	// A single-key write is seen by a multi read.
	want["m2"] = newEntry([]byte("single"), 42)
	if err := set(ctx, b, "m2", want["m2"]); err != nil {
		return err
	}
	// Order, partial misses and a repeated key.
	query := []string{"m3", "absent-1", "m0", "m5", "absent-2", "m3", "m2"}
	if err := e.expectMulti(ctx, m, query, want); err != nil {
		return err
	}
	// Delete a mix of present and absent keys.
	if err := m.del(ctx, []string{"m0", "absent-1", "m3"}); err != nil {
		return fmt.Errorf("DeleteMulti: %w", err)
	}
	delete(want, "m0")
	delete(want, "m3")
	if err := e.expectMulti(ctx, m, append(query, "m1", "m4"), want); err != nil {
		return fmt.Errorf("after DeleteMulti of m0, absent-1, m3: %w", err)
	}
	return nil
}

func (e *env) expectMulti(ctx context.Context, m multiOps, keys []string, want map[string]backends.Entry) error {
	got, err := m.get(ctx, keys)
	if err != nil {
		return fmt.Errorf("GetMulti(%q): %w", keys, err)
	}
	if len(got) != len(keys) {
		return fmt.Errorf("GetMulti of %d keys returned %d results", len(keys), len(got))
	}
	for i, k := range keys {
		w, present := want[k]
		switch {
		case e.discards() && got[i] != nil:
			return fmt.Errorf("GetMulti result %d (key %s) is an entry, want a miss: a backend that declares discards keeps nothing", i, qkey(k))
		case e.discards():
		case present && got[i] == nil:
			return fmt.Errorf("GetMulti result %d (key %s) is a miss, want the entry", i, qkey(k))
		case !present && got[i] != nil:
			return fmt.Errorf("GetMulti result %d (key %s) is an entry (version %d), want a miss", i, qkey(k), got[i].Version)
		case present:
			if err := e.sameEntry(*got[i], w); err != nil {
				return fmt.Errorf("GetMulti result %d (key %s): %w", i, qkey(k), err)
			}
		}
	}
	return nil
}
