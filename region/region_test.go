package region_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	_ "github.com/regioncache/regioncache/backends/null"
	"github.com/regioncache/regioncache/region"
)

func open(t *testing.T, args backends.Args, opts ...region.Option) *region.Region {
	t.Helper()
	r, err := region.Open("memory", args, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Both memory modes: values kept as Go values, and encoded bytes (which
// exercises the codec path exactly like a file or network backend).
var modes = []struct {
	name string
	args backends.Args
}{{"values", nil}, {"encoded", backends.Args{"copy_values": true}}}

func TestColdKeyStampedeCreatesOnce(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := open(t, m.args)
			var creations atomic.Int32
			release := make(chan struct{})
			var wg sync.WaitGroup
			const callers = 100
			errs := make(chan error, callers)
			for i := 0; i < callers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := region.GetOrCreate(context.Background(), r, "cold", func(ctx context.Context) (string, error) {
						creations.Add(1)
						<-release
						return "value", nil
					})
					if err == nil && v != "value" {
						err = fmt.Errorf("got %q", v)
					}
					errs <- err
				}()
			}
			// Let every other caller find the lock held before the creator
			// finishes.
			waitFor(t, func() bool { return r.Stats().LockWaits == callers-1 })
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := creations.Load(); n != 1 {
				t.Fatalf("creations = %d, want 1", n)
			}
			st := r.Stats()
			if st.Calls != callers || st.Creations != 1 || st.Misses != callers || st.Hits != 0 || st.LockWaits != callers-1 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestExpiredKeyServesStaleWhileOneRegenerates(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := open(t, m.args, region.WithExpiration(20*time.Millisecond))
			ctx := context.Background()
			if err := region.Set(ctx, r, "k", "old"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)

			started := make(chan struct{})
			release := make(chan struct{})
			var creations atomic.Int32
			done := make(chan string)
			go func() {
				v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
					creations.Add(1)
					close(started)
					<-release
					return "new", nil
				})
				if err != nil {
					v = err.Error()
				}
				done <- v
			}()
			<-started
			// While the creator runs, every other caller gets the stale value
			// at once, without waiting for release.
			for i := 0; i < 50; i++ {
				v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
					creations.Add(1)
					return "wrong", nil
				})
				if err != nil || v != "old" {
					t.Fatalf("caller %d got %q, %v; want stale", i, v, err)
				}
			}
			close(release)
			if v := <-done; v != "new" {
				t.Fatalf("creator got %q", v)
			}
			if n := creations.Load(); n != 1 {
				t.Fatalf("creations = %d, want 1", n)
			}
			if st := r.Stats(); st.StaleServed != 50 {
				t.Fatalf("stale served = %d, want 50", st.StaleServed)
			}
			v, _ := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "x", nil })
			if v != "new" {
				t.Fatalf("after regeneration got %q", v)
			}
		})
	}
}

func TestWaitForFresh(t *testing.T) {
	r := open(t, nil, region.WithExpiration(10*time.Millisecond))
	ctx := context.Background()
	region.Set(ctx, r, "k", "old")
	time.Sleep(20 * time.Millisecond)
	started, release := make(chan struct{}), make(chan struct{})
	go region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
		close(started)
		<-release
		return "new", nil
	})
	<-started
	got := make(chan string)
	go func() {
		v, _ := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "second", nil }, region.WaitForFresh())
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("WaitForFresh returned %q before the creator finished", v)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if v := <-got; v != "new" {
		t.Fatalf("WaitForFresh got %q, want the fresh value", v)
	}
}

func TestRegenerateInBackground(t *testing.T) {
	r := open(t, nil, region.WithExpiration(10*time.Millisecond))
	ctx := context.Background()
	region.Set(ctx, r, "k", "old")
	time.Sleep(20 * time.Millisecond)
	release := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	v, err := region.GetOrCreate(cctx, r, "k", func(ctx context.Context) (string, error) {
		<-release
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "new", nil
	}, region.RegenerateInBackground())
	if err != nil || v != "old" {
		t.Fatalf("got %q, %v; want the stale value at once", v, err)
	}
	cancel() // the background creator must not see the caller's cancellation
	close(release)
	waitFor(t, func() bool { return r.Stats().Creations == 1 })
	waitFor(t, func() bool {
		// Expiration is 10 ms: on a loaded machine the new value may be
		// stale again by the time it is read.
		v, err := region.Get[string](ctx, r, "k", region.IgnoreExpiration())
		return err == nil && v == "new"
	})
}

func TestCreatorErrorCachesNothingAndReleasesLock(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	boom := errors.New("boom")
	_, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (int, error) { return 0, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := region.Get[int](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("after a failed creator Get = %v, want ErrNotFound", err)
	}
	// The lock was released: the next call creates (with a deadline, so a
	// leaked lock fails the test instead of hanging it).
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := region.GetOrCreate(tctx, r, "k", func(ctx context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestCreatorErrorKeepsStaleValue(t *testing.T) {
	r := open(t, nil, region.WithExpiration(10*time.Millisecond))
	ctx := context.Background()
	region.Set(ctx, r, "k", "old")
	time.Sleep(20 * time.Millisecond)
	_, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "", errors.New("down") })
	if err == nil {
		t.Fatal("want the creator's error")
	}
	// The stale entry is still there to be served.
	e, err := r.Backend().Get(ctx, "k")
	if err != nil || e.Value != "old" {
		t.Fatalf("stale entry gone: %+v, %v", e, err)
	}
}

func TestCreatorPanicReleasesLockAndRepanics(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Fatalf("recovered %v, want kaboom", p)
			}
		}()
		region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (int, error) { panic("kaboom") })
		t.Fatal("GetOrCreate returned after a panic")
	}()
	if _, err := region.Get[int](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("after a panic Get = %v, want ErrNotFound", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, err := region.GetOrCreate(tctx, r, "k", func(ctx context.Context) (int, error) { return 1, nil }); err != nil || v != 1 {
		t.Fatalf("lock not released after panic: %v, %v", v, err)
	}
}

func TestCancelledContextStopsWaiter(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	go region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	})
	<-started
	defer close(release)
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() {
		_, err := region.GetOrCreate(wctx, r, "k", func(ctx context.Context) (int, error) { return 2, nil })
		errc <- err
	}()
	waitFor(t, func() bool { return r.Stats().LockWaits == 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not stop when its context was cancelled")
	}
}

func TestHardAndSoftInvalidation(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := open(t, m.args)
			ctx := context.Background()
			region.Set(ctx, r, "k", "v1")

			if err := r.Invalidate(ctx, region.Soft); err != nil {
				t.Fatal(err)
			}
			// Soft: the old value is stale: Get misses, GetOrCreate
			// regenerates (it wins the free lock), and a caller losing the
			// race would be served the old value.
			if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
				t.Fatalf("Get after soft invalidation = %v", err)
			}
			started, release := make(chan struct{}), make(chan struct{})
			go region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
				close(started)
				<-release
				return "v2", nil
			})
			<-started
			v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "never", nil })
			if err != nil || v != "v1" {
				t.Fatalf("soft-invalidated value not served stale: %q, %v", v, err)
			}
			close(release)
			waitFor(t, func() bool { v, err := region.Get[string](ctx, r, "k"); return err == nil && v == "v2" })

			// Hard: the value is missing: callers wait for a new one rather
			// than being served the old.
			if err := r.Invalidate(ctx, region.Hard); err != nil {
				t.Fatal(err)
			}
			v, err = region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "v3", nil })
			if err != nil || v != "v3" {
				t.Fatalf("after hard invalidation got %q, %v", v, err)
			}
		})
	}
}

func TestGetOrCreateMulti(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := open(t, m.args)
			ctx := context.Background()
			region.Set(ctx, r, "b", 20)
			var calls [][]string
			create := func(ctx context.Context, missing []string) ([]int, error) {
				calls = append(calls, append([]string(nil), missing...))
				out := make([]int, len(missing))
				for i, k := range missing {
					out[i] = int(k[0]-'a'+1) * 10
				}
				return out, nil
			}
			got, err := region.GetOrCreateMulti(ctx, r, []string{"c", "b", "a", "c"}, create)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[30 20 10 30]" {
				t.Fatalf("got %v, want results in input order", got)
			}
			if len(calls) != 1 || fmt.Sprint(calls[0]) != "[c a]" {
				t.Fatalf("creator calls = %v, want one call with the missing keys [c a]", calls)
			}
			got, err = region.GetOrCreateMulti(ctx, r, []string{"a", "b", "c"}, create)
			if err != nil || fmt.Sprint(got) != "[10 20 30]" || len(calls) != 1 {
				t.Fatalf("second call: %v, %v, creator calls %v", got, err, calls)
			}
		})
	}
}

func TestGetOrCreateMultiCreatorCountMismatch(t *testing.T) {
	r := open(t, nil)
	_, err := region.GetOrCreateMulti(context.Background(), r, []string{"a", "b"}, func(ctx context.Context, missing []string) ([]int, error) {
		return []int{1}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "1 values for 2 keys") {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheIf(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	n := 0
	create := func(ctx context.Context) (int, error) { n++; return -n, nil }
	for i := 0; i < 3; i++ {
		v, err := region.GetOrCreate(ctx, r, "k", create, region.CacheIf(func(v int) bool { return v >= 0 }))
		if err != nil || v != -(i+1) {
			t.Fatalf("call %d: %v, %v", i, v, err)
		}
	}
	if n != 3 {
		t.Fatalf("creator ran %d times, want 3 (negative values are not cached)", n)
	}
}

type point struct {
	X, Y int
	Name string
}

func TestCodecsRoundTrip(t *testing.T) {
	for _, c := range []region.Codec{region.Gob, region.JSON} {
		t.Run(c.Name(), func(t *testing.T) {
			r := open(t, backends.Args{"copy_values": true}, region.WithCodec(c))
			ctx := context.Background()
			want := point{1, -2, "p"}
			if err := region.Set(ctx, r, "p", want); err != nil {
				t.Fatal(err)
			}
			got, err := region.Get[point](ctx, r, "p")
			if err != nil || got != want {
				t.Fatalf("got %+v, %v", got, err)
			}
			// []byte and string are stored as they are, not through the codec.
			region.Set(ctx, r, "b", []byte{0, 1, 255})
			e, _ := r.Backend().Get(ctx, "b")
			if string(e.Payload) != "\x00\x01\xff" {
				t.Fatalf("[]byte stored as %q", e.Payload)
			}
			region.Set(ctx, r, "s", "héllo")
			e, _ = r.Backend().Get(ctx, "s")
			if string(e.Payload) != "héllo" {
				t.Fatalf("string stored as %q", e.Payload)
			}
			if s, err := region.Get[string](ctx, r, "s"); err != nil || s != "héllo" {
				t.Fatalf("string back: %q %v", s, err)
			}
		})
	}
}

func TestUndecodableValueIsRegenerated(t *testing.T) {
	r := open(t, backends.Args{"copy_values": true})
	ctx := context.Background()
	r.Backend().Set(ctx, "p", backends.Entry{Payload: []byte("not gob"), Created: time.Now()})
	n := 0
	v, err := region.GetOrCreate(ctx, r, "p", func(ctx context.Context) (point, error) { n++; return point{X: 1}, nil })
	if err != nil || v.X != 1 || n != 1 {
		t.Fatalf("got %+v, %v, creator ran %d times", v, err, n)
	}
	// A kept value of another type is also a miss, not an error.
	r2 := open(t, nil)
	region.Set(ctx, r2, "k", 42)
	s, err := region.GetOrCreate(ctx, r2, "k", func(ctx context.Context) (string, error) { return "str", nil })
	if err != nil || s != "str" {
		t.Fatalf("type change: %q, %v", s, err)
	}
}

func TestMinVersion(t *testing.T) {
	b := memory.New()
	old := region.New(region.WithVersion(1))
	if err := old.ConfigureBackend(b); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	region.Set(ctx, old, "k", "v1-shape")
	// A second region on the same storage that needs version 2.
	shared := &noClose{b}
	r := region.New(region.WithVersion(2), region.WithMinVersion(2))
	r.ConfigureBackend(shared)
	if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("old version read: %v", err)
	}
	v, _ := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "v2-shape", nil })
	if v != "v2-shape" {
		t.Fatalf("got %q", v)
	}
	if e, _ := b.Get(ctx, "k"); e.Version != 2 {
		t.Fatalf("stored version %d", e.Version)
	}
}

type noClose struct{ backends.Backend }

func (noClose) Close() error { return nil }

func TestTagsAndEvictTag(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	region.Set(ctx, r, "a", 1, region.WithTags("users"))
	region.Set(ctx, r, "b", 2, region.WithTags("users", "admins"))
	region.Set(ctx, r, "c", 3)
	n, err := r.EvictTag(ctx, "users")
	if err != nil || n != 2 {
		t.Fatalf("EvictTag = %d, %v", n, err)
	}
	if _, err := region.Get[int](ctx, r, "a"); !errors.Is(err, region.ErrNotFound) {
		t.Fatal("tagged entry survived")
	}
	if v, err := region.Get[int](ctx, r, "c"); err != nil || v != 3 {
		t.Fatal("untagged entry evicted")
	}
	nr, _ := region.Open("null", nil)
	if _, err := nr.EvictTag(ctx, "x"); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("null EvictTag = %v, want ErrUnsupported", err)
	}
}

func TestDeleteAndGetSet(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	region.Set(ctx, r, "a", "1")
	region.Set(ctx, r, "b", "2")
	if err := r.Delete(ctx, "a", "b", "absent"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := region.Get[string](ctx, r, k); !errors.Is(err, region.ErrNotFound) {
			t.Fatalf("%s survived Delete", k)
		}
	}
}

func TestExpireAfterOverride(t *testing.T) {
	r := open(t, nil) // never expires by default
	ctx := context.Background()
	region.Set(ctx, r, "k", "v")
	time.Sleep(5 * time.Millisecond)
	if _, err := region.Get[string](ctx, r, "k", region.ExpireAfter(time.Millisecond)); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("per-call expiration ignored: %v", err)
	}
	if v, err := region.Get[string](ctx, r, "k"); err != nil || v != "v" {
		t.Fatalf("region default: %q %v", v, err)
	}
}

func TestReservedKeysCannotBeReached(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	for _, k := range []string{"\x00regioncache:invalidated:hard", "\x00regioncache:invalidated:soft", "\x00", ""} {
		if err := region.Set(ctx, r, k, "user"); err != nil {
			t.Fatal(err)
		}
		if v, err := region.Get[string](ctx, r, k); err != nil || v != "user" {
			t.Fatalf("key %q: %q %v", k, v, err)
		}
	}
	// Writing the user keys did not invalidate anything.
	if err := r.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	region.Set(ctx, r, "after", "x")
	if v, err := region.Get[string](ctx, r, "after"); err != nil || v != "x" {
		t.Fatalf("%q %v", v, err)
	}
}

func TestKeyManglers(t *testing.T) {
	r := open(t, nil, region.WithKeyMangler(region.SHA256Mangler))
	ctx := context.Background()
	long := strings.Repeat("k", 10000)
	region.Set(ctx, r, long, "v")
	var keys []string
	r.Backend().(backends.Lister).List(ctx, func(i backends.EntryInfo) error { keys = append(keys, i.Key); return nil })
	if len(keys) != 1 || len(keys[0]) != 64 {
		t.Fatalf("stored keys %q", keys)
	}
	m := region.LengthConditionalMangler(8, region.SHA1Mangler)
	if m("short") != "short" || len(m(long)) != 41 || m("#x") == "#x" {
		t.Fatalf("length-conditional: %q %q %q", m("short"), m(long), m("#x"))
	}
}

func TestUnknownBackendListsKnown(t *testing.T) {
	_, err := region.Open("memcached", nil)
	if !errors.Is(err, region.ErrUnknownBackend) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"memcached"`, "memory", "null"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %s", err, want)
		}
	}
}

func TestBadArgumentsAreClear(t *testing.T) {
	_, err := region.Open("memory", backends.Args{"max_entries": "lots"})
	if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), "max_entries") || !strings.Contains(err.Error(), "integer") {
		t.Fatalf("err = %v", err)
	}
	_, err = region.Open("memory", backends.Args{"max_entires": 3})
	if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), "max_entires") || !strings.Contains(err.Error(), "max_entries") {
		t.Fatalf("misspelt argument: %v", err)
	}
}

func TestConfigureLifecycle(t *testing.T) {
	ctx := context.Background()
	r := region.New()
	if _, err := region.Get[int](ctx, r, "k"); !errors.Is(err, region.ErrNotConfigured) {
		t.Fatalf("unconfigured: %v", err)
	}
	if err := r.Configure("memory", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Configure("memory", nil); !errors.Is(err, region.ErrAlreadyConfigured) {
		t.Fatalf("second Configure: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("Close is not idempotent")
	}
	if _, err := region.Get[int](ctx, r, "k"); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if err := r.Configure("memory", nil); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("Configure after Close: %v", err)
	}
}

func TestConfigureFromMapAndFiles(t *testing.T) {
	ctx := context.Background()
	r := region.New()
	err := r.ConfigureFromMap(map[string]any{
		"cache.users.backend":               "memory",
		"cache.users.expiration_time":       "1ms",
		"cache.users.arguments.max_entries": 10,
		"cache.other.backend":               "null",
	}, "cache.users.")
	if err != nil {
		t.Fatal(err)
	}
	region.Set(ctx, r, "k", "v")
	time.Sleep(3 * time.Millisecond)
	if _, err := region.Get[string](ctx, r, "k"); !errors.Is(err, region.ErrNotFound) {
		t.Fatal("expiration_time from the map not applied")
	}
	if err := region.New().ConfigureFromMap(map[string]any{"c.backend": "memory", "c.expiry": 3}, "c."); err == nil || !strings.Contains(err.Error(), "c.expiry") {
		t.Fatalf("unknown key: %v", err)
	}

	dir := t.TempDir()
	js := filepath.Join(dir, "c.json")
	os.WriteFile(js, []byte(`{"cache":{"users":{"backend":"memory","arguments":{"max_entries":"x"}}}}`), 0o600)
	if err := region.New().ConfigureFromFile(js, "cache.users."); !errors.Is(err, backends.ErrBadArgument) {
		t.Fatalf("bad JSON argument: %v", err)
	}
}

func TestCachedLoader(t *testing.T) {
	r := open(t, nil)
	ctx := context.Background()
	calls := 0
	l := region.Cached(r, "square", func(ctx context.Context, n int) (int, error) { calls++; return n * n, nil })
	for i := 0; i < 3; i++ {
		if v, err := l.Load(ctx, 7); err != nil || v != 49 {
			t.Fatalf("Load = %v, %v", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times", calls)
	}
	if l.Key(7) != "square:7" {
		t.Fatalf("key %q", l.Key(7))
	}
	if v, err := l.Get(ctx, 7); err != nil || v != 49 {
		t.Fatal(v, err)
	}
	if _, err := l.Get(ctx, 8); !errors.Is(err, region.ErrNotFound) {
		t.Fatal(err)
	}
	l.Set(ctx, 8, 1000)
	if v, _ := l.Load(ctx, 8); v != 1000 {
		t.Fatalf("Set ignored: %d", v)
	}
	l.Invalidate(ctx, 8)
	if v, _ := l.Load(ctx, 8); v != 64 || calls != 2 {
		t.Fatalf("after Invalidate: %d, calls %d", v, calls)
	}
	if v, err := l.Refresh(ctx, 7); err != nil || v != 49 || calls != 3 {
		t.Fatalf("Refresh: %d %v calls %d", v, err, calls)
	}

	type key struct {
		A string
		B int
	}
	ls := region.Cached(r, "s", func(ctx context.Context, k key) (string, error) { return k.A, nil })
	if ls.Key(key{"x y", 1}) == ls.Key(key{"x", 1}) || !strings.HasPrefix(ls.Key(key{"x", 1}), "s:") {
		t.Fatalf("struct keys: %q", ls.Key(key{"x", 1}))
	}
	lk := region.Cached(r, "u", func(ctx context.Context, id int) (int, error) { return id, nil },
		region.KeyFunc(func(id int) string { return fmt.Sprintf("user-%04d", id) }))
	if lk.Key(7) != "u:user-0007" {
		t.Fatalf("KeyFunc: %q", lk.Key(7))
	}
}

// failingSet is a memory backend whose writes fail.
type failingSet struct{ *memory.Backend }

func (f failingSet) Set(ctx context.Context, key string, e backends.Entry) error {
	return errors.New("disk full")
}

func TestFailedWriteDoesNotFailCall(t *testing.T) {
	r := region.New()
	var events []region.EventKind
	var mu sync.Mutex
	r.ConfigureBackend(failingSet{memory.New()}, region.WithObserver(func(e region.Event) {
		mu.Lock()
		events = append(events, e.Kind)
		mu.Unlock()
	}))
	v, err := region.GetOrCreate(context.Background(), r, "k", func(ctx context.Context) (string, error) { return "v", nil })
	if err != nil || v != "v" {
		t.Fatalf("got %q, %v", v, err)
	}
	if st := r.Stats(); st.WriteErrors != 1 || st.Creations != 1 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(events) != "[miss created write-error]" {
		t.Fatalf("events %v", events)
	}
}

func TestNullBackendAlwaysCreates(t *testing.T) {
	r, err := region.Open("null", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < 3; i++ {
		region.GetOrCreate(context.Background(), r, "k", func(ctx context.Context) (int, error) { n++; return n, nil })
	}
	if n != 3 {
		t.Fatalf("null backend cached: creator ran %d times", n)
	}
}

func TestGetOrCreateFileUnsupported(t *testing.T) {
	r := open(t, nil)
	_, err := region.GetOrCreateFile(context.Background(), r, "k", func(ctx context.Context) (*os.File, error) { return nil, nil })
	if !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
}
