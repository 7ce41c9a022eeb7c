package region_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/regioncache/regioncache/region"
)

func ExampleCachedMulti() {
	r, _ := region.Open("memory", nil)
	defer r.Close()
	users := map[int]string{1: "ann", 2: "bob", 3: "cid"}
	byID := region.CachedMulti(r, "user", func(ctx context.Context, ids []int) (map[int]string, error) {
		slices.Sort(ids)
		fmt.Println("loading", ids)
		out := make(map[int]string)
		for _, id := range ids {
			if name, ok := users[id]; ok { // 9 does not exist: left out, never cached
				out[id] = name
			}
		}
		return out, nil
	})
	ctx := context.Background()
	got, _ := byID.Load(ctx, []int{1, 2})
	fmt.Println(got)
	got, _ = byID.Load(ctx, []int{2, 3, 9}) // only 3 and 9 are missing
	fmt.Println(got)
	users[2] = "bo"
	got, _ = byID.Refresh(ctx, []int{2})
	fmt.Println(got)
	// Output:
	// loading [1 2]
	// map[1:ann 2:bob]
	// loading [3 9]
	// map[2:bob 3:cid]
	// loading [2]
	// map[2:bo]
}

func ExampleGetEntry() {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now } // a settable clock: no sleeping in tests
	r, _ := region.Open("memory", nil, region.WithClock(clock), region.WithExpiration(time.Hour))
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "k", "v", region.WithTags("reports"))
	now = now.Add(45 * time.Minute)
	e, err := region.GetEntry[string](ctx, r, "k")
	fmt.Println(e.Value, e.Age, e.Tags, e.Stale, err)
	now = now.Add(30 * time.Minute)
	_, err = region.GetEntry[string](ctx, r, "k")
	fmt.Println(err)
	e, _ = region.GetEntry[string](ctx, r, "k", region.IgnoreExpiration())
	fmt.Println(e.Value, e.Age, e.Stale)
	// Output:
	// v 45m0s [reports] false <nil>
	// regioncache: not found
	// v 1h15m0s true
}

func ExampleEarlyRefresh() {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	r, _ := region.Open("memory", nil, region.WithClock(func() time.Time { return now }),
		region.WithExpiration(time.Minute))
	defer r.Close()
	ctx := context.Background()
	version := 0
	create := func(ctx context.Context) (int, error) {
		time.Sleep(time.Millisecond) // the creator's run time scales how early
		version++
		return version, nil
	}
	v, _ := region.GetOrCreate(ctx, r, "k", create, region.EarlyRefresh(100))
	fmt.Println("created", v)
	now = now.Add(time.Minute - time.Microsecond) // about to expire
	v, _ = region.GetOrCreate(ctx, r, "k", create, region.EarlyRefresh(100))
	fmt.Println("served at once", v) // and regenerated in the background
	for v != 2 {
		time.Sleep(time.Millisecond)
		v, _ = region.Get[int](ctx, r, "k")
	}
	fmt.Println("regenerated", v, "before it expired; stale values served:", r.Stats().StaleServed)
	// Output:
	// created 1
	// served at once 1
	// regenerated 2 before it expired; stale values served: 0
}

func ExampleWithInvalidationStrategy() {
	// A strategy of the application's own (dogpile's region_invalidator):
	// here, everything created before a deploy is stale.
	deployed := time.Now()
	r, _ := region.Open("memory", nil, region.WithInvalidationStrategy(deployStrategy{deployed}))
	defer r.Close()
	ctx := context.Background()
	region.Set(ctx, r, "k", "v")
	v, err := region.Get[string](ctx, r, "k")
	fmt.Println(v, err)
	// Output:
	// v <nil>
}

type deployStrategy struct{ deployed time.Time }

func (deployStrategy) Invalidate(ctx context.Context, mode region.InvalidationMode, now time.Time) error {
	return fmt.Errorf("invalidate by deploying")
}

func (d deployStrategy) Invalidated(ctx context.Context, created time.Time) (region.InvalidationMode, bool) {
	return region.Soft, created.Before(d.deployed)
}
