package region_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
)

// GetOrCreateFile caches values that are files (rawfs): the creator writes a
// temporary file; every caller gets a read-only file on exactly its bytes.
func ExampleGetOrCreateFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir, "file_movable": true})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		f, err := region.GetOrCreateFile(ctx, r, "report.csv", func(ctx context.Context) (*os.File, error) {
			fmt.Println("creating the report")
			tmp, err := os.CreateTemp(dir, "report-")
			if err != nil {
				return nil, err
			}
			_, err = tmp.WriteString("id,total\n1,42\n")
			return tmp, err
		}, region.MoveFile())
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		fmt.Printf("%q\n", b)
	}
	// Output:
	// creating the report
	// "id,total\n1,42\n"
	// "id,total\n1,42\n"
}

// WithObserver receives an event per outcome (hits, misses, creations, lock
// waits, errors), with the caller's context, the region's name and durations:
// the hook metrics and tracing are built on (see contrib/prometheus and
// contrib/otel).
func ExampleWithObserver() {
	r, err := region.Open("memory", nil, region.WithName("users"), region.WithObserver(func(e region.Event) {
		fmt.Println(e.Region, e.Kind, e.Key)
	}))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		region.GetOrCreate(ctx, r, "u1", func(context.Context) (string, error) { return "Ada", nil })
	}
	s := r.Stats()
	fmt.Println("calls", s.Calls, "hits", s.Hits, "misses", s.Misses, "creations", s.Creations)
	// Output:
	// users miss u1
	// users created u1
	// users hit u1
	// calls 2 hits 1 misses 1 creations 1
}
