package region_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// source is a loader function's database: it records every call.
type source struct {
	mu    sync.Mutex
	data  map[int]string
	calls [][]int
	delay time.Duration
	err   error
}

func (s *source) load(ctx context.Context, ids []int) (map[int]string, error) {
	s.mu.Lock()
	s.calls = append(s.calls, slices.Clone(ids))
	err := s.err
	s.mu.Unlock()
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]string)
	for _, id := range ids {
		if v, ok := s.data[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (s *source) callLog() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]int, len(s.calls))
	for i, c := range s.calls {
		out[i] = slices.Sorted(slices.Values(c))
	}
	return out
}

func TestCachedMultiLoadsOnlyMissingKeysOnce(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	src := &source{data: map[int]string{1: "one", 2: "two", 3: "three", 4: "four"}}
	m := region.CachedMulti(r, "n", src.load)

	got, err := m.Load(ctx, []int{1, 2})
	if err != nil || !maps.Equal(got, map[int]string{1: "one", 2: "two"}) {
		t.Fatalf("first Load = %v, %v", got, err)
	}
	// 2 is cached; 3 and 4 are missing; 9 does not exist in the source; 3 is
	// asked twice.
	got, err = m.Load(ctx, []int{2, 3, 9, 4, 3})
	if err != nil || !maps.Equal(got, map[int]string{2: "two", 3: "three", 4: "four"}) {
		t.Fatalf("second Load = %v, %v", got, err)
	}
	if log := src.callLog(); fmt.Sprint(log) != "[[1 2] [3 4 9]]" {
		t.Fatalf("fn calls %v, want [[1 2] [3 4 9]]: once per Load, with exactly the missing keys", log)
	}
	// The omitted key was not cached: Get misses it, and Load asks fn again.
	if c, err := m.Get(ctx, []int{1, 9}); err != nil || !maps.Equal(c, map[int]string{1: "one"}) {
		t.Fatalf("Get = %v, %v", c, err)
	}
	if _, err := region.Get[string](ctx, r, m.Key(9)); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("omitted key cached: %v", err)
	}
	got, _ = m.Load(ctx, []int{1, 2, 3, 4, 9})
	if len(got) != 4 {
		t.Fatalf("third Load = %v", got)
	}
	if log := src.callLog(); fmt.Sprint(log[2:]) != "[[9]]" {
		t.Fatalf("third Load called fn with %v, want [[9]]", log[2:])
	}
	if st := r.Stats(); st.Creations != 4 {
		t.Fatalf("Creations = %d, want 4 (omitted keys create nothing)", st.Creations)
	}
}

func TestCachedMultiRefreshOverwrites(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	src := &source{data: map[int]string{1: "a", 2: "b"}}
	m := region.CachedMulti(r, "n", src.load)
	m.Load(ctx, []int{1, 2})
	src.mu.Lock()
	src.data[1], src.data[2] = "A", "B"
	delete(src.data, 2) // 2 disappeared from the source
	src.data[1] = "A"
	src.mu.Unlock()
	if got, _ := m.Load(ctx, []int{1, 2}); !maps.Equal(got, map[int]string{1: "a", 2: "b"}) {
		t.Fatalf("cached Load = %v", got)
	}
	got, err := m.Refresh(ctx, []int{1, 2})
	if err != nil || !maps.Equal(got, map[int]string{1: "A"}) {
		t.Fatalf("Refresh = %v, %v", got, err)
	}
	if log := src.callLog(); fmt.Sprint(log) != "[[1 2] [1 2]]" {
		t.Fatalf("fn calls %v: Refresh must call fn once with every key", log)
	}
	if got, _ := m.Get(ctx, []int{1, 2}); !maps.Equal(got, map[int]string{1: "A", 2: "b"}) {
		t.Fatalf("after Refresh the cache holds %v, want 1 overwritten and 2 left as it was", got)
	}
}

func TestCachedMultiSetInvalidateGetAndLoaderSharing(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	src := &source{data: map[int]string{1: "one", 2: "two"}}
	m := region.CachedMulti(r, "n", src.load)
	if err := m.Set(ctx, map[int]string{1: "set", 5: "five"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Load(ctx, []int{1, 5}); !maps.Equal(got, map[int]string{1: "set", 5: "five"}) || len(src.callLog()) != 0 {
		t.Fatalf("Set values not served: %v (fn calls %v)", got, src.callLog())
	}
	// A Loader of the same namespace and types shares the entries.
	l := region.Cached(r, "n", func(ctx context.Context, id int) (string, error) { return "loader", nil })
	if v, err := l.Get(ctx, 5); err != nil || v != "five" || l.Key(5) != m.Key(5) {
		t.Fatalf("Loader sees %q, %v (keys %q, %q)", v, err, l.Key(5), m.Key(5))
	}
	if err := m.Invalidate(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(ctx, []int{1, 5}); len(got) != 0 {
		t.Fatalf("after Invalidate Get = %v", got)
	}
	if got, _ := m.Load(ctx, []int{1, 5}); !maps.Equal(got, map[int]string{1: "one"}) {
		t.Fatalf("after Invalidate Load = %v", got)
	}
}

func TestCachedMultiCacheIfPerKey(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	src := &source{data: map[int]string{1: "keep", 2: "", 3: "keep"}}
	m := region.CachedMulti(r, "n", src.load, region.CacheIf(func(v string) bool { return v != "" }))
	if got, _ := m.Load(ctx, []int{1, 2, 3}); len(got) != 3 || got[2] != "" {
		t.Fatalf("Load = %v: a value CacheIf rejects is still returned", got)
	}
	if got, _ := m.Get(ctx, []int{1, 2, 3}); !maps.Equal(got, map[int]string{1: "keep", 3: "keep"}) {
		t.Fatalf("cached %v, want only the values CacheIf keeps", got)
	}
}

func TestCachedMultiErrorCachesNothing(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	boom := errors.New("boom")
	src := &source{data: map[int]string{1: "one"}, err: boom}
	m := region.CachedMulti(r, "n", src.load)
	if _, err := m.Load(ctx, []int{1}); !errors.Is(err, boom) {
		t.Fatalf("Load error %v, want boom", err)
	}
	src.err = nil
	if got, _ := m.Get(ctx, []int{1}); len(got) != 0 {
		t.Fatalf("failed Load cached %v", got)
	}
	if got, err := m.Load(ctx, []int{1}); err != nil || got[1] != "one" {
		t.Fatalf("Load after failure %v %v", got, err)
	}
}

// TestCachedMultiConcurrent: many callers on overlapping keys; every key that
// exists is loaded exactly once in all, and nobody gets a wrong value.
func TestCachedMultiConcurrent(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	data := map[int]string{}
	for i := range 20 {
		if i%5 != 0 { // multiples of 5 do not exist
			data[i] = fmt.Sprint("v", i)
		}
	}
	src := &source{data: data, delay: 20 * time.Millisecond}
	m := region.CachedMulti(r, "n", src.load)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var keys []int
			for i := range 20 {
				if (i+g)%3 != 0 {
					keys = append(keys, i)
				}
			}
			got, err := m.Load(ctx, keys)
			if err != nil {
				bad.Add(1)
				return
			}
			for _, k := range keys {
				v, ok := got[k]
				if want, exists := data[k]; ok != exists || v != want {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d wrong results", bad.Load())
	}
	asked := map[int]int{}
	for _, c := range src.callLog() {
		for _, k := range c {
			asked[k]++
		}
	}
	for k := range data {
		if asked[k] != 1 {
			t.Errorf("key %d loaded %d times, want 1", k, asked[k])
		}
	}
}

// TestCachedMultiKeysCollide: two keys that map to one cache key (a KeyFunc
// that is not injective, like a mangler collision) are one key: fn is asked
// once, and both get its value.
func TestCachedMultiKeysCollide(t *testing.T) {
	r := open(t, nil, region.WithKeyMangler(func(k string) string { return k[:3] }))
	ctx := context.Background()
	src := &source{data: map[int]string{10: "ten", 11: "eleven"}}
	m := region.CachedMulti(r, "n", src.load, region.KeyFunc(func(id int) string { return fmt.Sprint(id / 10) }))
	got, err := m.Load(ctx, []int{10, 11})
	if err != nil || !maps.Equal(got, map[int]string{10: "ten", 11: "ten"}) || len(src.callLog()) != 1 {
		t.Fatalf("Load = %v, %v; fn calls %v", got, err, src.callLog())
	}
}

// TestCachedMultiContextAndClose: a cancelled caller returns at once; Close
// waits for a Load in flight, then refuses new ones.
func TestCachedMultiContextAndClose(t *testing.T) {
	r, err := region.Open("memory", backends.Args{})
	if err != nil {
		t.Fatal(err)
	}
	src := &source{data: map[int]string{1: "one"}, delay: 100 * time.Millisecond}
	m := region.CachedMulti(r, "n", src.load)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := m.Load(ctx, []int{1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Load: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := m.Load(context.Background(), []int{1})
		if err == nil && got[1] != "one" {
			err = fmt.Errorf("got %v", got)
		}
		done <- err
	}()
	// Close once the second Load is inside the loader (its first call was
	// the cancelled Load's), not after a guess at how long that takes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		src.mu.Lock()
		n := len(src.calls)
		src.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second Load never reached the loader (%d calls)", n)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Load in flight during Close: %v", err)
		}
	default:
		t.Fatal("Close returned before the Load in flight")
	}
	if _, err := m.Load(context.Background(), []int{1}); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("Load after Close: %v", err)
	}
}
