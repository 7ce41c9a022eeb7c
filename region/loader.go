package region

import (
	"context"
	"fmt"
	"strconv"
)

// Loader wraps a loader function with a region: Load is fn through the cache.
// Make one with Cached. A Loader is safe for concurrent use.
type Loader[K comparable, V any] struct {
	r         *Region
	namespace string
	fn        func(context.Context, K) (V, error)
	keyFn     func(K) string
	opts      []CallOption
}

// Cached returns a Loader that caches fn's results in r under keys made of
// namespace and the argument (dogpile's cache_on_arguments). The cache key
// of k is namespace + ":" + a string form of k: strings as they are, integers
// and booleans in decimal, fmt.Stringers by their String method, anything else
// in Go syntax (%#v, which quotes strings, so struct keys do not collide). A
// KeyFunc option replaces that string form. Other call options (ExpireAfter,
// WithTags, CacheIf[V], ...) apply to every call the Loader makes.
func Cached[K comparable, V any](r *Region, namespace string, fn func(context.Context, K) (V, error), opts ...CallOption) *Loader[K, V] {
	return &Loader[K, V]{r: r, namespace: namespace, fn: fn, opts: opts, keyFn: keyFuncOf[K](opts)}
}

// Key returns the cache key used for k.
func (l *Loader[K, V]) Key(k K) string {
	return cacheKey(l.namespace, l.keyFn, k)
}

// keyFuncOf returns the KeyFunc for K among opts, or nil.
func keyFuncOf[K comparable](opts []CallOption) func(K) string {
	var c callConfig
	for _, o := range opts {
		if o != nil {
			o.applyCall(&c)
		}
	}
	f, _ := c.keyFunc.(func(K) string)
	return f
}

// cacheKey is the cache key of k under namespace (see Cached).
func cacheKey[K comparable](namespace string, keyFn func(K) string, k K) string {
	if keyFn != nil {
		return namespace + ":" + keyFn(k)
	}
	return namespace + ":" + formatKey(k)
}

func formatKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case bool:
		return strconv.FormatBool(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprintf("%#v", k)
}

// Load returns fn(ctx, k) through the cache: the cached value if fresh,
// otherwise the result of calling fn under the key's dogpile lock.
func (l *Loader[K, V]) Load(ctx context.Context, k K) (V, error) {
	if l.r.namespaceDisabled(l.namespace) {
		return l.fn(ctx, k)
	}
	return GetOrCreate(ctx, l.r, l.Key(k), func(ctx context.Context) (V, error) { return l.fn(ctx, k) }, l.opts...)
}

// Get returns the cached value for k only; a miss is an error wrapping
// ErrNotFound.
func (l *Loader[K, V]) Get(ctx context.Context, k K) (V, error) {
	return Get[V](ctx, l.r, l.Key(k), l.opts...)
}

// Set stores v as the value for k.
func (l *Loader[K, V]) Set(ctx context.Context, k K, v V) error {
	return Set(ctx, l.r, l.Key(k), v, l.opts...)
}

// Invalidate removes the cached value for k.
func (l *Loader[K, V]) Invalidate(ctx context.Context, k K) error {
	return l.r.Delete(ctx, l.Key(k))
}

// Refresh calls fn now, stores its result (subject to CacheIf) and returns
// it, whatever the cache held.
func (l *Loader[K, V]) Refresh(ctx context.Context, k K) (V, error) {
	opts := append(append([]CallOption(nil), l.opts...), ExpireAfter(0), WaitForFresh())
	return l.loadWith(ctx, k, opts)
}

func (l *Loader[K, V]) loadWith(ctx context.Context, k K, opts []CallOption) (V, error) {
	return GetOrCreate(ctx, l.r, l.Key(k), func(ctx context.Context) (V, error) { return l.fn(ctx, k) }, opts...)
}
