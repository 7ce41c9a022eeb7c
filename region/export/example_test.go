package export_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/export"
)

// Export a cached file value to a path of the caller's choosing.
func ExampleGetOrCreateFile() {
	dir, _ := os.MkdirTemp("", "export-example-*")
	defer os.RemoveAll(dir)
	r, err := region.Open("rawfs", backends.Args{"base_dir": filepath.Join(dir, "cache")})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	dst := filepath.Join(dir, "report.txt")
	err = export.GetOrCreateFile(context.Background(), r, "report", dst, func(ctx context.Context) (*os.File, error) {
		f, err := r.CreateTemp("report-*")
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString("quarterly numbers\n")
		return f, err
	}, export.WithCallOptions(region.MoveFile()))
	if err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(dst)
	fmt.Print(string(b))
	// Output: quarterly numbers
}
