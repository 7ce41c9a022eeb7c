package rawfs_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
)

// A rawfs region caches files. The creator writes into a temporary file made
// by the region (on the cache's filesystem), and MoveFile lets the cache take
// it with a rename instead of a copy.
func Example() {
	dir, _ := os.MkdirTemp("", "example-rawfs")
	defer os.RemoveAll(dir)
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	f, err := region.GetOrCreateFile(context.Background(), r, "report.csv", func(ctx context.Context) (*os.File, error) {
		tmp, err := r.CreateTemp("report-*.csv")
		if err != nil {
			return nil, err
		}
		_, err = io.WriteString(tmp, "id,total\n1,99\n")
		return tmp, err
	}, region.MoveFile())
	if err != nil {
		panic(err)
	}
	defer f.Close() // read-only; f.Name() can be handed to other programs
	b, _ := io.ReadAll(f)
	fmt.Print(string(b))
	// Output:
	// id,total
	// 1,99
}
