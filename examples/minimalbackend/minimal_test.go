package minimalbackend_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/examples/minimalbackend"
	"github.com/regioncache/regioncache/region"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "minimal",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return minimalbackend.New(), nil },
	})
}

// A backend registered by name is used like any other.
func Example() {
	r, err := region.Open("minimal", nil)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	v, err := region.GetOrCreate(context.Background(), r, "answer", func(context.Context) (int, error) { return 42, nil })
	fmt.Println(v, err)
	// Output: 42 <nil>
}
