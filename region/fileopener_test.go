package region_test

import (
	"context"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
)

type storeOpenCounter struct {
	backends.Proxy
	opens, storeOpens atomic.Int64
}

func (c *storeOpenCounter) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	c.opens.Add(1)
	return c.Proxy.OpenFile(ctx, key)
}

func (c *storeOpenCounter) StoreFileOpen(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) (*os.File, error) {
	c.storeOpens.Add(1)
	return c.Proxy.StoreFileOpen(ctx, key, f, e, move)
}

// GetOrCreateFile stores and opens the created file in one step
// (backends.FileStoreOpener) also through a proxy, instead of re-opening the
// stored entry, which eviction could remove in between.
func TestGetOrCreateFileStoresAndOpensThroughProxy(t *testing.T) {
	ctx := context.Background()
	var c *storeOpenCounter
	r, err := region.Open("rawfs", backends.Args{"base_dir": t.TempDir()}, region.WithWrap(func(next backends.Backend) (backends.Backend, error) {
		c = &storeOpenCounter{Proxy: backends.Proxy{Next: next}}
		return c, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := region.GetOrCreateFile(ctx, r, "k", func(ctx context.Context) (*os.File, error) {
		tmp, err := os.CreateTemp(t.TempDir(), "v")
		if err != nil {
			return nil, err
		}
		_, err = tmp.WriteString("the bytes")
		return tmp, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "the bytes" {
		t.Fatalf("read %q, %v", b, err)
	}
	if c.storeOpens.Load() != 1 || c.opens.Load() != 2 {
		t.Errorf("StoreFileOpen %d, OpenFile %d; want 1 and 2 (the first read and the re-read under the lock; none after the store)", c.storeOpens.Load(), c.opens.Load())
	}
}
