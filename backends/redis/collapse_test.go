package redis_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/region"
)

// TestConcurrentReadsOfOneKeyAreCollapsed: 32 goroutines of one process
// reading one key while Redis is stalled cost Redis two GETs (the one in
// flight when they came, and one for all of them), not 32; and each gets the
// value, with and without the local tier.
func TestConcurrentReadsOfOneKeyAreCollapsed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stalling the server needs SIGSTOP")
	}
	for _, local := range []bool{false, true} {
		name := "remote"
		if local {
			name = "local_cache"
		}
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t)
			args := backends.Args{"url": srv.URL(0), "prefix": "collapse"}
			if local {
				args["local_cache"] = 100
			}
			// The marks of region-wide invalidations are not re-read during the
			// burst: only reads of k reach Redis.
			r, err := region.Open("redis", args, region.WithInvalidationCheck(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			if err := region.Set(ctx, r, "k", "v"); err != nil {
				t.Fatal(err)
			}
			// Warm the connection pool so that the burst needs no dials.
			var warm sync.WaitGroup
			for range 32 {
				warm.Add(1)
				go func() { defer warm.Done(); _, _ = region.Get[string](ctx, r, "warm") }()
			}
			warm.Wait()
			// A hit of another key loads the region's invalidation marks.
			if err := region.Set(ctx, r, "other", "x"); err != nil {
				t.Fatal(err)
			}
			if _, err := region.Get[string](ctx, r, "other"); err != nil {
				t.Fatal(err)
			}
			before, err := srv.CommandStats()
			if err != nil {
				t.Fatal(err)
			}
			srv.Stall()
			var wg sync.WaitGroup
			errs := make(chan error, 32)
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := region.Get[string](ctx, r, "k")
					if err == nil && v != "v" {
						t.Errorf("got %q, want v", v)
					}
					errs <- err
				}()
			}
			time.Sleep(300 * time.Millisecond) // all 32 are waiting on Redis
			srv.Resume()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			after, err := srv.CommandStats()
			if err != nil {
				t.Fatal(err)
			}
			n := after["get"] - before["get"]
			t.Logf("32 concurrent reads of one key: %d GETs", n)
			if n > 2 {
				for k, v := range after {
					if v != before[k] {
						t.Logf("commands during the burst: %s: %d", k, v-before[k])
					}
				}
				t.Fatalf("32 concurrent reads of one key sent %d GETs, want at most 2", n)
			}
		})
	}
}

// TestCloseDuringCollapsedReads: Close while Redis is stalled with a read in
// flight and callers waiting for the next one returns at once (it does not
// wait out the client's timeouts), and the waiting callers get
// backends.ErrClosed — with and without the local tier.
func TestCloseDuringCollapsedReads(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stalling the server needs SIGSTOP")
	}
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			srv := redistest.Start(t)
			args := backends.Args{"url": srv.URL(0), "prefix": "close"}
			if local {
				args["local_cache"] = 100
			}
			b, err := backends.Open("redis", args)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := b.Get(ctx, "warm"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("warm-up Get: %v", err)
			}
			srv.Stall()
			defer srv.Resume()
			errs := make(chan error, 8)
			for range 8 {
				go func() { _, err := b.Get(ctx, "k"); errs <- err }()
			}
			time.Sleep(200 * time.Millisecond) // one read in flight, seven waiting
			start := time.Now()
			if err := b.Close(); err != nil {
				t.Logf("Close: %v", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Close took %v with Redis stalled", took)
			}
			closed := 0
			for range 8 {
				if err := <-errs; errors.Is(err, backends.ErrClosed) {
					closed++
				}
			}
			if closed < 7 {
				t.Fatalf("%d of the 7 waiting callers got ErrClosed", closed)
			}
		})
	}
}
