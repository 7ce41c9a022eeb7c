package region

import (
	"context"
)

// MultiLoader wraps a function that loads many keys at once with a region:
// Load is fn through the cache, asking fn only for the keys the cache cannot
// serve (dogpile's cache_multi_on_arguments with asdict=True). Make one with
// CachedMulti. A MultiLoader is safe for concurrent use.
type MultiLoader[K comparable, V any] struct {
	r         *Region
	namespace string
	fn        func(context.Context, []K) (map[K]V, error)
	keyFn     func(K) string
	opts      []CallOption
}

// CachedMulti returns a MultiLoader that caches fn's results in r, each key
// under its own cache key, made as by Cached (namespace + ":" + the key's
// string form, or KeyFunc's), so a Loader and a MultiLoader with the same
// namespace, key type and value type share entries. Call options apply to
// every call, per key: a CacheIf[V] decides for each value on its own.
//
// fn is given keys without duplicates and returns the values it has for
// them; a key it leaves out of the map has no value: it is absent from
// Load's result and nothing is cached for it. Entries of keys fn was not
// asked for are ignored.
func CachedMulti[K comparable, V any](r *Region, namespace string, fn func(context.Context, []K) (map[K]V, error), opts ...CallOption) *MultiLoader[K, V] {
	return &MultiLoader[K, V]{r: r, namespace: namespace, fn: fn, opts: opts, keyFn: keyFuncOf[K](opts)}
}

// Key returns the cache key used for k.
func (m *MultiLoader[K, V]) Key(k K) string {
	return cacheKey(m.namespace, m.keyFn, k)
}

// Load returns the values of keys through the cache, as a map from key to
// value: fresh cached values as they are, and the others from one call of fn
// with exactly the keys that are missing (or stale, with this caller holding
// their lock), each under its dogpile lock, as GetOrCreateMulti does. Keys
// fn has no value for are absent from the map. fn's error is returned and
// nothing is cached.
func (m *MultiLoader[K, V]) Load(ctx context.Context, keys []K) (map[K]V, error) {
	if m.r.namespaceDisabled(m.namespace) {
		// fn is given keys without duplicates, as when cached.
		uniq := make([]K, 0, len(keys))
		seen := make(map[K]bool, len(keys))
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				uniq = append(uniq, k)
			}
		}
		return m.fn(ctx, uniq)
	}
	return m.load(ctx, keys, m.opts)
}

// Get returns the fresh cached values of keys only; keys without one are
// absent from the map.
func (m *MultiLoader[K, V]) Get(ctx context.Context, keys []K) (map[K]V, error) {
	cks := m.keys(keys)
	vs, found, err := GetMulti[V](ctx, m.r, cks, m.opts...)
	if err != nil {
		return nil, err
	}
	out := make(map[K]V, len(keys))
	for i, k := range keys {
		if found[i] {
			out[k] = vs[i]
		}
	}
	return out, nil
}

// Set stores values, created now, without locking (see SetMulti).
func (m *MultiLoader[K, V]) Set(ctx context.Context, values map[K]V) error {
	byKey := make(map[string]V, len(values))
	for k, v := range values {
		byKey[m.Key(k)] = v
	}
	return SetMulti(ctx, m.r, byKey, m.opts...)
}

// Invalidate removes the cached values of keys.
func (m *MultiLoader[K, V]) Invalidate(ctx context.Context, keys ...K) error {
	return m.r.Delete(ctx, m.keys(keys)...)
}

// Refresh calls fn now with all of keys (once, under their locks), stores
// the values it returns (subject to CacheIf) and returns them, whatever the
// cache held. Keys fn has no value for are absent from the map; their
// cached values, if any, are left as they are.
func (m *MultiLoader[K, V]) Refresh(ctx context.Context, keys []K) (map[K]V, error) {
	opts := append(append([]CallOption(nil), m.opts...), ExpireAfter(0), WaitForFresh())
	return m.load(ctx, keys, opts)
}

func (m *MultiLoader[K, V]) keys(keys []K) []string {
	cks := make([]string, len(keys))
	for i, k := range keys {
		cks[i] = m.Key(k)
	}
	return cks
}

func (m *MultiLoader[K, V]) load(ctx context.Context, keys []K, opts []CallOption) (map[K]V, error) {
	cks := m.keys(keys)
	byKey := make(map[string]K, len(keys)) // cache key → the first key that maps to it
	for i, ck := range cks {
		if _, ok := byKey[ck]; !ok {
			byKey[ck] = keys[i]
		}
	}
	vs, found, err := getOrCreateMulti(ctx, m.r, cks, func(ctx context.Context, missing []string) ([]V, []bool, error) {
		ks := make([]K, len(missing))
		for i, ck := range missing {
			ks[i] = byKey[ck]
		}
		got, err := m.fn(ctx, ks)
		if err != nil {
			return nil, nil, err
		}
		vs := make([]V, len(ks))
		ok := make([]bool, len(ks))
		for i, k := range ks {
			vs[i], ok[i] = got[k]
		}
		return vs, ok, nil
	}, opts)
	if err != nil {
		return nil, err
	}
	out := make(map[K]V, len(keys))
	for i, k := range keys {
		if found[i] {
			out[k] = vs[i]
		}
	}
	return out, nil
}
