package region

import (
	"context"
	"fmt"
	"slices"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// GetOrCreateMulti is GetOrCreate for many keys at once. It returns one value
// per key, in the order of keys. create is called at most once, with the keys
// (as given, without duplicates, in first-seen order) whose values are
// missing, or stale with this caller holding their lock; it must return one
// value per key it was given, in that order.
//
// Locks on missing keys are taken in a fixed (sorted) order, so concurrent
// multi calls on overlapping keys cannot deadlock each other; locks on stale
// keys are only tried, and a stale value whose lock is held elsewhere is
// served as it is.
func GetOrCreateMulti[T any](ctx context.Context, r *Region, keys []string, create func(ctx context.Context, missing []string) ([]T, error), opts ...CallOption) ([]T, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	cfg := s.callCfg(opts)

	// Unique keys in first-seen order; index maps each to its result slot.
	index := make(map[string]int, len(keys))
	var uniq, bks []string
	for _, k := range keys {
		if _, ok := index[k]; !ok {
			index[k] = len(uniq)
			uniq = append(uniq, k)
			bks = append(bks, s.key(k))
		}
	}
	values := make([]T, len(uniq))
	done := make([]bool, len(uniq))

	entries, err := backends.GetMulti(ctx, s.backend, bks)
	if err != nil {
		s.event(EventError, "", err)
		return nil, fmt.Errorf("region %s: get multi: %w", s.name, err)
	}
	var missingIdx, staleIdx []int
	for i, e := range entries {
		st := missing
		if e != nil {
			st = s.classify(ctx, e, cfg.expiration)
			if st != missing {
				v, ok := decode[T](s, e)
				if !ok {
					st = missing
				} else {
					values[i] = v
				}
			}
		}
		switch st {
		case fresh:
			done[i] = true
			s.event(EventHit, uniq[i], nil)
		case stale:
			if cfg.waitFresh {
				missingIdx = append(missingIdx, i)
			} else {
				staleIdx = append(staleIdx, i)
			}
		default:
			missingIdx = append(missingIdx, i)
		}
	}
	if len(missingIdx) == 0 && len(staleIdx) == 0 {
		return expand(keys, index, values), nil
	}

	// Blocking locks first, in sorted order; then stale keys are only tried.
	held := make(map[int]lock.Handle)
	defer func() {
		for i, h := range held {
			s.unlock(h, uniq[i])
		}
	}()
	slices.SortFunc(missingIdx, func(a, b int) int {
		if bks[a] < bks[b] {
			return -1
		} else if bks[a] > bks[b] {
			return 1
		}
		return 0
	})
	for _, i := range missingIdx {
		s.event(EventMiss, uniq[i], nil)
		h, err := s.lockWait(ctx, uniq[i], bks[i])
		if err != nil {
			return nil, err
		}
		held[i] = h
	}
	for _, i := range staleIdx {
		h, ok, err := s.lock.TryLock(ctx, bks[i])
		if err != nil || !ok {
			if err != nil {
				s.event(EventError, uniq[i], err)
			}
			done[i] = true
			s.event(EventStaleServed, uniq[i], nil)
			continue
		}
		held[i] = h
	}

	// Re-read what we hold: another caller may have created it meanwhile.
	var lockedIdx []int
	for i := range held {
		lockedIdx = append(lockedIdx, i)
	}
	slices.Sort(lockedIdx)
	lockedKeys := make([]string, len(lockedIdx))
	for j, i := range lockedIdx {
		lockedKeys[j] = bks[i]
	}
	again, err := backends.GetMulti(ctx, s.backend, lockedKeys)
	if err != nil {
		s.event(EventError, "", err)
		return nil, fmt.Errorf("region %s: get multi: %w", s.name, err)
	}
	var createIdx []int
	for j, i := range lockedIdx {
		if e := again[j]; e != nil && s.classify(ctx, e, cfg.expiration) == fresh {
			if v, ok := decode[T](s, e); ok {
				values[i], done[i] = v, true
				s.event(EventHit, uniq[i], nil)
				continue
			}
		}
		createIdx = append(createIdx, i)
	}
	if len(createIdx) == 0 {
		return expand(keys, index, values), nil
	}

	missingKeys := make([]string, len(createIdx))
	for j, i := range createIdx {
		missingKeys[j] = uniq[i]
	}
	created, err := create(ctx, missingKeys)
	if err != nil {
		s.event(EventError, "", err)
		return nil, err
	}
	if len(created) != len(createIdx) {
		err := fmt.Errorf("region %s: GetOrCreateMulti: creator returned %d values for %d keys", s.name, len(created), len(createIdx))
		s.event(EventError, "", err)
		return nil, err
	}
	keep, _ := cfg.shouldCache.(func(T) bool)
	var setKeys []string
	var setEntries []backends.Entry
	for j, i := range createIdx {
		values[i], done[i] = created[j], true
		s.event(EventCreated, uniq[i], nil)
		if keep != nil && !keep(created[j]) {
			continue
		}
		e, err := entryFor(s, created[j], &cfg)
		if err != nil {
			s.logger.Warn("regioncache: cannot encode created value", "key", printable(uniq[i]), "err", err)
			s.event(EventWriteError, uniq[i], err)
			continue
		}
		setKeys = append(setKeys, bks[i])
		setEntries = append(setEntries, e)
	}
	if len(setKeys) > 0 {
		if err := backends.SetMulti(ctx, s.backend, setKeys, setEntries); err != nil {
			s.logger.Warn("regioncache: cannot store created values", "keys", len(setKeys), "err", err)
			s.event(EventWriteError, "", err)
		}
	}
	return expand(keys, index, values), nil
}

// expand maps unique results back onto the caller's keys, duplicates included.
func expand[T any](keys []string, index map[string]int, values []T) []T {
	if len(keys) == len(values) {
		return values
	}
	out := make([]T, len(keys))
	for j, k := range keys {
		out[j] = values[index[k]]
	}
	return out
}
