package bundle_test

import (
	"context"
	"fmt"
	"os"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/bundle"
)

// A bundle of two files, created once and then served from the cache,
// verified on every load.
func ExampleGetOrCreate() {
	dir, _ := os.MkdirTemp("", "bundle-example-*")
	defer os.RemoveAll(dir)
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	ctx := context.Background()
	for range 2 {
		b, err := bundle.GetOrCreate(ctx, r, "geo/2020", 1, func(ctx context.Context, w *bundle.Writer) error {
			fmt.Println("creating the bundle")
			if err := w.AddBytes("counties.csv", []byte("fips,name\n08001,Adams\n")); err != nil {
				return err
			}
			return w.AddBytes("meta.json", []byte(`{"year":2020}`))
		})
		if err != nil {
			panic(err)
		}
		csv, _ := b.ReadFile("counties.csv")
		fmt.Printf("version %d, members %q, counties.csv %d bytes\n", b.Version(), b.Names(), len(csv))
		b.Close()
	}
	// Output:
	// creating the bundle
	// version 1, members ["counties.csv" "meta.json"], counties.csv 22 bytes
	// version 1, members ["counties.csv" "meta.json"], counties.csv 22 bytes
}
