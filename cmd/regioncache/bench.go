package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/region"
)

func init() { register("bench", newBench) }

// benchReport is bench's -json output.
type benchReport struct {
	Backend  string        `json:"backend"`
	Floor    string        `json:"floor"` // what the ratios are measured against
	Rows     []benchRow    `json:"rows"`
	Stampede stampedeStats `json:"stampede"`
}

// benchRow is one operation measured against its floor in the same loop.
type benchRow struct {
	Op        string  `json:"op"`
	N         int     `json:"n"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	OpsPerSec float64 `json:"ops_per_sec"`
	FloorP50  float64 `json:"floor_p50_us"`
	Ratio     float64 `json:"ratio"` // P50 / FloorP50
}

// stampedeStats is one stampede of callers on one cold key.
type stampedeStats struct {
	Callers   int     `json:"callers"`
	Creations int64   `json:"creations"`
	WorkMS    float64 `json:"work_ms"`
	// LastAfterMS is how long after the creator's end the last caller
	// returned (the dogpile bar: within 20 ms).
	LastAfterMS float64 `json:"last_after_creator_ms"`
	Errors      int64   `json:"errors"`
}

// floor is the bare storage medium a backend stands on: the cost of a read
// and a write with no cache around them.
type floor struct {
	name  string
	read  func(ctx context.Context) error
	write func(ctx context.Context, i int) error
	close func()
}

func newBench(e *env) *cobra.Command {
	var (
		n, callers, size int
		work             time.Duration
		tf               *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "bench [DIR] [--backend NAME --arg k=v ... | --config FILE --prefix P] [-n N] [--size BYTES] [--callers N] [--work D]",
		Short: "measure a backend: hit, miss and stampede latency and throughput against its medium's floor",
		Long: `bench measures a region over a backend: hits and misses (latency
percentiles and throughput), each interleaved with the same operation on the
backend's bare medium (a file read / temp-file-and-rename for directories and
file backends, a go-redis GET / SET for redis, a mutex-guarded map otherwise),
and a stampede of --callers goroutines on one cold key (how many creations,
and how long after the creator's end the last caller returned). Keys start
with "regioncache-bench:" and are deleted afterwards. Run it on an idle
machine: the ratios are what to compare.`,
		Example: `  regioncache bench --backend memory
  regioncache bench --backend redis --arg url=redis://localhost:6379/0 -json
  regioncache bench /var/cache/app --size 4096`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 {
				return usagef("--ops (-n): want at least 1, got %d", n)
			}
			if callers < 1 {
				return usagef("--callers: want at least 1, got %d", callers)
			}
			if size < 0 {
				return usagef("--size: want 0 or more bytes, got %d", size)
			}
			if work < 0 {
				return usagef("--work: want a duration that is not negative, got %v", work)
			}
			return runBench(cmd.Context(), e, cmd, tf, args, n, size, callers, work)
		},
	}
	tf = addTargetFlags(cmd)
	f := cmd.Flags()
	f.IntVarP(&n, "ops", "n", 2000, "operations per measurement")
	f.IntVar(&size, "size", 100, "value size in bytes")
	f.IntVar(&callers, "callers", 64, "goroutines in the stampede")
	f.DurationVar(&work, "work", 50*time.Millisecond, "the stampede creator's run time")
	return cmd
}

// benchBackend opens the backend to measure and the floor of its medium.
func benchBackend(ctx context.Context, tf *targetFlags, args []string, size int) (name string, b backends.Backend, fl floor, err error) {
	var a backends.Args
	switch {
	case tf.selected():
		if len(args) > 0 {
			return "", nil, fl, usagef("unexpected arguments %q", args)
		}
		if tf.config != "" {
			if len(tf.args) > 0 || tf.backend != "" {
				return "", nil, fl, usagef("--config: give the backend and its arguments in the file")
			}
			name, a, err = configBackend(tf.config, tf.prefix)
		} else {
			name, a = tf.backend, backends.Args{}
			for _, s := range tf.args {
				k, v, ok := cutArg(s)
				if !ok {
					return "", nil, fl, usagef("--arg %q: want key=value", s)
				}
				a[k] = v
			}
		}
		if err != nil {
			return "", nil, fl, err
		}
	case len(args) == 1:
		dir := args[0]
		if !fsstore.IsCacheDir(dir) {
			return "", nil, fl, fmt.Errorf("%s is not a regioncache filesystem or rawfs cache directory (no %s)", dir, fsstore.LockFile)
		}
		name, a = kindName(fsstore.DetectKind(dir)), backends.Args{"base_dir": dir}
	default:
		return "", nil, fl, usagef("want a cache directory, or --backend NAME [--arg k=v ...], or --config FILE --prefix P")
	}
	t, err := openBackend(name, a)
	if err != nil {
		return "", nil, fl, err
	}
	b = t.(*backendTarget).b
	fl, err = floorFor(ctx, name, a, size)
	if err != nil {
		b.Close()
		return "", nil, fl, err
	}
	return name, b, fl, nil
}

func cutArg(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], i > 0
		}
	}
	return "", "", false
}

// floorFor picks the floor for backend name with args a.
func floorFor(ctx context.Context, name string, a backends.Args, size int) (floor, error) {
	payload := make([]byte, size)
	dir, _ := a.String("base_dir", "")
	url, _ := a.String("url", "")
	switch {
	case dir != "" && (name == "filesystem" || name == "rawfs"):
		fdir, err := os.MkdirTemp(dir, "regioncache-bench-floor-")
		if err != nil {
			return floor{}, err
		}
		path := filepath.Join(fdir, "value")
		if err := os.WriteFile(path, payload, 0o600); err != nil {
			os.RemoveAll(fdir)
			return floor{}, err
		}
		return floor{
			name: "file in " + dir + ": os.ReadFile / temp file + rename",
			read: func(context.Context) error { _, err := os.ReadFile(path); return err },
			write: func(_ context.Context, i int) error {
				f, err := os.CreateTemp(fdir, "tmp-")
				if err != nil {
					return err
				}
				if _, err := f.Write(payload); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				return os.Rename(f.Name(), filepath.Join(fdir, "w"+strconv.Itoa(i%64)))
			},
			close: func() { os.RemoveAll(fdir) },
		}, nil
	case name == "redis" && url != "":
		opt, err := goredis.ParseURL(url)
		if err != nil {
			return floor{}, fmt.Errorf("--arg url: %w", err)
		}
		c := goredis.NewClient(opt)
		key := "regioncache-bench:floor"
		if err := c.Set(ctx, key, payload, 0).Err(); err != nil {
			c.Close()
			return floor{}, err
		}
		return floor{
			name:  "go-redis GET / SET on " + opt.Addr,
			read:  func(ctx context.Context) error { return c.Get(ctx, key).Err() },
			write: func(ctx context.Context, i int) error { return c.Set(ctx, key+":w", payload, 0).Err() },
			close: func() { c.Del(context.Background(), key, key+":w"); c.Close() },
		}, nil
	}
	var mu sync.RWMutex
	m := map[string][]byte{"k": payload}
	var sink atomic.Int64
	return floor{
		name: "in-process map under sync.RWMutex",
		read: func(context.Context) error {
			mu.RLock()
			v := m["k"]
			mu.RUnlock()
			sink.Add(int64(len(v)))
			return nil
		},
		write: func(_ context.Context, i int) error {
			c := slices.Clone(payload)
			mu.Lock()
			m["w"+strconv.Itoa(i%64)] = c
			mu.Unlock()
			return nil
		},
		close: func() {},
	}, nil
}

func runBench(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, n, size, callers int, work time.Duration) error {
	name, b, fl, err := benchBackend(ctx, tf, args, size)
	if err != nil {
		return err
	}
	defer fl.close()
	r := region.New()
	if err := r.ConfigureBackend(b, region.WithName("bench")); err != nil {
		b.Close()
		return err
	}
	defer r.Close()
	payload := make([]byte, size)
	prefix := "regioncache-bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	var written []string
	defer func() {
		// Deleting the keys is best effort, and must happen even after an
		// interrupt.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for i := 0; i < len(written); i += 500 {
			r.Delete(dctx, written[i:min(i+500, len(written))]...)
		}
	}()
	create := func(context.Context) ([]byte, error) { return payload, nil }
	rep := benchReport{Backend: name, Floor: fl.name}
	p := newProgress(e, "bench", false)

	// measure times op and the floor alternately, n times each.
	measure := func(label string, op func(i int) error, floorOp func(i int) error) error {
		ts := make([]time.Duration, 0, n)
		fs := make([]time.Duration, 0, n)
		var total time.Duration
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Alternate which goes first, so that neither always runs
			// on the other's warm caches.
			var dOp, dFloor time.Duration
			for j := range 2 {
				t0 := time.Now()
				if (i+j)%2 == 0 {
					if err := op(i); err != nil {
						return fmt.Errorf("%s: %w", label, err)
					}
					dOp = time.Since(t0)
				} else {
					if err := floorOp(i); err != nil {
						return fmt.Errorf("%s floor: %w", label, err)
					}
					dFloor = time.Since(t0)
				}
			}
			ts = append(ts, dOp)
			fs = append(fs, dFloor)
			total += dOp
			p.step(i+1, n)
		}
		row := benchRow{Op: label, N: n, P50us: pct(ts, 50), P99us: pct(ts, 99), FloorP50: pct(fs, 50)}
		if total > 0 {
			row.OpsPerSec = float64(n) / total.Seconds()
		}
		if row.FloorP50 > 0 {
			row.Ratio = row.P50us / row.FloorP50
		}
		rep.Rows = append(rep.Rows, row)
		return nil
	}

	hitKey := prefix + "hit"
	written = append(written, hitKey)
	if _, err := region.GetOrCreate(ctx, r, hitKey, create); err != nil {
		return err
	}
	err = measure("hit", func(int) error {
		_, err := region.GetOrCreate(ctx, r, hitKey, create)
		return err
	}, func(int) error { return fl.read(ctx) })
	if err != nil {
		return err
	}
	err = measure("miss", func(i int) error {
		k := prefix + "miss:" + strconv.Itoa(i)
		written = append(written, k)
		_, err := region.GetOrCreate(ctx, r, k, create)
		return err
	}, func(i int) error { return fl.write(ctx, i) })
	if err != nil {
		return err
	}
	p.done()
	rep.Stampede, err = benchStampede(ctx, r, prefix+"stampede", callers, work, payload)
	written = append(written, prefix+"stampede")
	if err != nil {
		return err
	}
	if jsonOut(cmd) {
		return writeJSON(e.stdout, rep)
	}
	printBench(e.stdout, rep)
	return nil
}

func printBench(w io.Writer, rep benchReport) {
	fmt.Fprintf(w, "backend %s; floor: %s\n\n", rep.Backend, rep.Floor)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OP\tN\tP50\tP99\tOPS/S\tFLOOR P50\tP50/FLOOR\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.0f\t%s\t%.2f×\t\n", r.Op, r.N, us(r.P50us), us(r.P99us), r.OpsPerSec, us(r.FloorP50), r.Ratio)
	}
	tw.Flush()
	s := rep.Stampede
	fmt.Fprintf(w, "\nstampede: %d callers on one cold key, creator %.0f ms: %d creation(s), %d errors, last caller returned %.2f ms after the creator's end\n",
		s.Callers, s.WorkMS, s.Creations, s.Errors, s.LastAfterMS)
}

func us(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0fns", v*1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.1fµs", v)
}

// pct returns the p-th percentile of ds in microseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p)/100)
	return float64(s[i].Nanoseconds()) / 1000
}

// benchStampede releases callers goroutines at once on one cold key.
func benchStampede(ctx context.Context, r *region.Region, key string, callers int, work time.Duration, payload []byte) (stampedeStats, error) {
	st := stampedeStats{Callers: callers, WorkMS: float64(work.Microseconds()) / 1000}
	var creations, errs atomic.Int64
	var creatorEnd atomic.Int64
	var last atomic.Int64
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	ready.Add(callers)
	var firstErr error
	var once sync.Once
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			_, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) ([]byte, error) {
				creations.Add(1)
				select {
				case <-time.After(work):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				creatorEnd.Store(time.Now().UnixNano())
				return payload, nil
			})
			now := time.Now().UnixNano()
			for {
				old := last.Load()
				if now <= old || last.CompareAndSwap(old, now) {
					break
				}
			}
			if err != nil {
				errs.Add(1)
				once.Do(func() { firstErr = err })
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	st.Creations, st.Errors = creations.Load(), errs.Load()
	if end := creatorEnd.Load(); end > 0 {
		st.LastAfterMS = float64(last.Load()-end) / 1e6
	}
	if firstErr != nil && ctx.Err() != nil {
		return st, ctx.Err()
	}
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		return st, fmt.Errorf("stampede: %d callers failed, first: %w", st.Errors, firstErr)
	}
	return st, nil
}
