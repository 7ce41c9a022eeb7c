package memcached_test

import (
	"context"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/memcachedtest"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
)

// TestMain lets the test binary be the worker processes of the stampedes
// (internal/stampedetest).
func TestMain(m *testing.M) { stampedetest.Main(m, nil) }

// stampedeSpec is the stampede of the multi-process tests: goroutines
// callers per process, each process with its own region on srv under
// prefix, on key "k" with a creator that takes work.
func stampedeSpec(srv *memcachedtest.Server, prefix string, goroutines int, work time.Duration) stampedetest.Spec {
	return stampedetest.Spec{
		Backend: "memcached", Args: backends.Args{"url": srv.Addr(), "prefix": prefix, "lock_timeout": "10s", "socket_timeout": "10s"},
		Expiration: time.Minute, Key: "k", Goroutines: goroutines, Work: work,
	}
}

// TestMultiProcessColdKey: 8 processes × 32 goroutines on one cold key:
// exactly one creation; everybody gets its value. Reported: when the last
// caller returned after the creator's end (bar: 20 ms).
func TestMultiProcessColdKey(t *testing.T) {
	srv := memcachedtest.Start(t)
	const procs, goroutines = 8, 32
	stampedetest.Cold(t, procs, 1, func(int) stampedetest.Spec {
		return stampedeSpec(srv, "cold", goroutines, 200*time.Millisecond)
	})
}

// TestMultiProcessExpiredKey: on an expired key exactly one caller of all
// processes regenerates; every other caller is served the stale value.
// Reported: the stale callers' latency.
func TestMultiProcessExpiredKey(t *testing.T) {
	srv := memcachedtest.Start(t)
	ctx := context.Background()
	r, err := region.Open("memcached", backends.Args{"url": srv.Addr(), "prefix": "expired", "socket_timeout": "10s"}, region.WithExpiration(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Backend().Set(ctx, "k", backends.Entry{Payload: []byte("stale"), Created: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const procs, goroutines = 8, 32
	res, _ := stampedetest.Expired(t, procs, stampedeSpec(srv, "expired", goroutines, time.Second), "stale")
	if err := res.AllStaleErr("stale"); err != nil {
		t.Fatal(err)
	}
}
