package stampedetest

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/region"
)

// stampedeWorker opens the region, warms it up as a long-running process
// would be (a pooled connection per caller, the lock's subscription), waits
// for the release, and runs the callers.
func stampedeWorker(spec Spec) (any, error) {
	if spec.Spin > 0 || spec.Nap > 0 {
		return floorWorker(spec), nil
	}
	var opts []region.Option
	if spec.Expiration > 0 {
		opts = append(opts, region.WithExpiration(spec.Expiration))
	}
	r, err := region.Open(spec.Backend, spec.Args, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	ctx := context.Background()
	var warm sync.WaitGroup
	for range spec.Goroutines {
		warm.Go(func() { _, _ = region.Get[string](ctx, r, "warm-up") })
	}
	warm.Wait()
	if l, ok := r.Backend().(backends.Locking); ok && l.Locker() != nil {
		if w, ok := l.Locker().(lock.Waiter); ok {
			_ = w.WaitUnlocked(ctx, "warm-up")
		}
	}
	fresh := FreshPrefix + strconv.Itoa(os.Getpid())
	Ready()
	var res Result
	var created atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range spec.Goroutines {
		wg.Go(func() {
			start := time.Now()
			var v string
			var err error
			if spec.ReadOnly {
				v, err = region.Get[string](ctx, r, spec.Key, region.IgnoreExpiration())
			} else {
				v, err = region.GetOrCreate(ctx, r, spec.Key, func(ctx context.Context) (string, error) {
					created.Add(1)
					time.Sleep(spec.Work)
					mu.Lock()
					res.CreatorEnd = time.Now().UnixNano()
					mu.Unlock()
					return fresh, nil
				})
			}
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
				v = ""
			}
			res.Calls = append(res.Calls, Call{Value: v, Latency: now.Sub(start), Return: now.UnixNano()})
		})
	}
	wg.Wait()
	st := r.Stats()
	res.Created, res.Creations, res.StaleServed = int(created.Load()), st.Creations, st.StaleServed
	return res, nil
}

// floorWorker measures the machine's floors: after the release, each caller
// only keeps a CPU busy for spec.Spin, or sleeps spec.Nap once.
func floorWorker(spec Spec) Result {
	Ready()
	var res Result
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range spec.Goroutines {
		wg.Go(func() {
			start := time.Now()
			if spec.Nap > 0 {
				time.Sleep(spec.Nap)
			}
			for time.Since(start) < spec.Spin {
			}
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			res.Calls = append(res.Calls, Call{Latency: now.Sub(start), Return: now.UnixNano()})
		})
	}
	wg.Wait()
	return res
}
