package lifetime_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/lifetime"
)

type upload struct {
	name string
	data []byte
}

// An entry that lives as long as the object it belongs to.
func ExampleSet() {
	r, err := region.Open("memory", nil)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()

	u := &upload{name: "scan.png", data: make([]byte, 1024)}
	if _, err := lifetime.Set(ctx, r, "thumbnail:scan.png", []byte("small png"), u); err != nil {
		panic(err)
	}
	_, err = region.Get[[]byte](ctx, r, "thumbnail:scan.png")
	fmt.Println("while the upload lives:", err)

	u = nil // the upload is no longer reachable
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		if _, err = region.Get[[]byte](ctx, r, "thumbnail:scan.png"); errors.Is(err, region.ErrNotFound) {
			break
		}
	}
	fmt.Println("after it is collected:", errors.Is(err, region.ErrNotFound))
	// Output:
	// while the upload lives: <nil>
	// after it is collected: true
}
