package region_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

type countingGets struct {
	backends.Proxy
	gets atomic.Int64
}

func (c *countingGets) Get(ctx context.Context, k string) (backends.Entry, error) {
	c.gets.Add(1)
	return c.Proxy.Get(ctx, k)
}

// A caller that finds a stale value (and serves it) or finds nothing (and
// creates) reads the key once before deciding, not twice: on a remote store
// each read is a round trip. A creator re-reads after taking the lock, so a
// miss costs two reads in all.
func TestStaleAndMissReadOnce(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	var cg *countingGets
	r, err := region.Open("memory", nil, region.WithExpiration(time.Second),
		region.WithClock(func() time.Time { return time.Unix(0, clock.Load()) }),
		region.WithWrap(func(next backends.Backend) (backends.Backend, error) {
			cg = &countingGets{Proxy: backends.Proxy{Next: next}}
			return cg, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := cg.gets.Load()
	if _, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) { return "v1", nil }); err != nil {
		t.Fatal(err)
	}
	if n := cg.gets.Load() - start; n != 2 {
		t.Errorf("cold miss: %d backend reads, want 2 (the first read and the re-read under the lock)", n)
	}
	clock.Add(int64(2 * time.Second))
	// One caller regenerates (and holds the lock) while another comes.
	release := make(chan struct{})
	started := make(chan struct{})
	go region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) {
		close(started)
		<-release
		return "v2", nil
	})
	<-started
	start = cg.gets.Load()
	v, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) { return "v3", nil })
	close(release)
	if err != nil || v != "v1" {
		t.Fatalf("stale caller got %q, %v; want the stale value", v, err)
	}
	if n := cg.gets.Load() - start; n != 1 {
		t.Errorf("stale caller: %d backend reads, want 1", n)
	}
}
