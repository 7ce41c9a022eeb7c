package region_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
)

func ExampleGetOrCreate() {
	r, err := region.Open("memory", nil, region.WithExpiration(time.Minute))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()
	load := func(ctx context.Context) (string, error) {
		fmt.Println("creating")
		return "expensive result", nil
	}
	for i := 0; i < 2; i++ {
		v, err := region.GetOrCreate(ctx, r, "report", load)
		fmt.Println(v, err)
	}
	// Output:
	// creating
	// expensive result <nil>
	// expensive result <nil>
}

func ExampleCached() {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	upper := region.Cached(r, "upper", func(ctx context.Context, s string) (string, error) {
		fmt.Println("computing", s)
		return strings.ToUpper(s), nil
	})
	ctx := context.Background()
	v1, _ := upper.Load(ctx, "dogpile")
	v2, _ := upper.Load(ctx, "dogpile")
	fmt.Println(v1, v2, upper.Key("dogpile"))
	// Output:
	// computing dogpile
	// DOGPILE DOGPILE upper:dogpile
}

func ExampleGetOrCreateMulti() {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "b", 2)
	vs, _ := region.GetOrCreateMulti(ctx, r, []string{"a", "b", "c"}, func(ctx context.Context, missing []string) ([]int, error) {
		fmt.Println("missing:", missing)
		return []int{1, 3}, nil
	})
	fmt.Println(vs)
	// Output:
	// missing: [a c]
	// [1 2 3]
}

func ExampleRegion_Invalidate() {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "k", "old")
	r.Invalidate(ctx, region.Hard) // every value created before now is gone
	v, _ := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) { return "new", nil })
	fmt.Println(v)
	// Output: new
}

func ExampleRegion_ConfigureFromMap() {
	var users = region.New() // a package-level region, configured at start-up
	err := users.ConfigureFromMap(map[string]any{
		"cache.users.backend":               "memory",
		"cache.users.expiration_time":       600, // seconds, as in dogpile
		"cache.users.arguments.max_entries": 10000,
	}, "cache.users.")
	fmt.Println(err)
	// Output: <nil>
}
