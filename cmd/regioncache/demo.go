package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
)

func init() {
	register(&command{
		name:  "demo",
		usage: "demo [-callers N] [-work D]",
		short: "show dogpile locking: many callers stampede one cold key, one creation happens",
		run:   runDemo,
	})
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("demo", e)
	callers := fs.Int("callers", 200, "number of concurrent callers (goroutines)")
	work := fs.Duration("work", 200*time.Millisecond, "how long the creator takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *callers < 1 {
		return usagef("-callers: want at least 1, got %d", *callers)
	}
	r, err := region.Open("memory", nil)
	if err != nil {
		return err
	}
	defer r.Close()

	fmt.Fprintf(e.stdout, "stampede: %d goroutines ask a memory region for one cold key at once\n", *callers)
	var creations atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for i := 0; i < *callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := region.GetOrCreate(ctx, r, "report", func(ctx context.Context) (string, error) {
				creations.Add(1)
				select {
				case <-time.After(*work):
				case <-ctx.Done():
					return "", ctx.Err()
				}
				return "expensive result", nil
			})
			if err != nil {
				failed.Add(1)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	st := r.Stats()
	fmt.Fprintf(e.stdout, "callers: %d\n", *callers)
	fmt.Fprintf(e.stdout, "creations: %d\n", creations.Load())
	fmt.Fprintf(e.stdout, "waited for the creator: %d\n", st.LockWaits)
	fmt.Fprintf(e.stdout, "errors: %d\n", failed.Load())
	fmt.Fprintf(e.stdout, "elapsed: %v\n", time.Since(t0).Round(time.Millisecond))
	if failed.Load() > 0 {
		return fmt.Errorf("%d callers failed", failed.Load())
	}
	return nil
}
