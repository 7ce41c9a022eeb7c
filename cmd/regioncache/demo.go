package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/region"
)

func init() {
	register("demo", newDemo)
	// The demo re-executes this program as its worker processes.
	if os.Getenv(demoWorkerEnv) == "1" {
		os.Exit(demoWorker())
	}
}

const demoWorkerEnv = "REGIONCACHE_DEMO_WORKER"

// demoResult is what one worker process reports, as one JSON line.
type demoResult struct {
	Callers, Creations, Stale, Waits, Errors int64
	SlowestStaleNs                           int64  `json:",omitempty"` // the slowest caller served a previous round's value
	FirstError                               string `json:",omitempty"`
}

// demoFlags are demo's flags.
type demoFlags struct {
	procs, gor, callers int
	work                time.Duration
	dir                 string
}

// demoReport is demo's -json output: the two stampedes.
type demoReport struct {
	Dir     string    `json:"dir"`
	Cold    demoPhase `json:"cold"`
	Expired demoPhase `json:"expired"`
}

// demoPhase is one stampede's summed worker reports.
type demoPhase struct {
	demoResult
	ElapsedMS float64 `json:"elapsed_ms"`
}

func newDemo(e *env) *cobra.Command {
	df := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo [--processes N] [--goroutines N] [--callers N] [--work D] [--dir DIR]",
		Short: "show dogpile locking: processes × goroutines stampede one key of a filesystem region; one creation happens",
		Long: `demo starts worker processes (this program, re-executed) whose goroutines
all ask one filesystem region for the same cold key at once, and shows that
exactly one of them created the value while the others waited; then, once the
value has expired, the same callers ask again: one regenerates, the others are
served the stale value at once.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if df.procs < 1 {
				return usagef("--processes: want at least 1, got %d", df.procs)
			}
			if cmd.Flags().Changed("callers") {
				if df.callers < 1 {
					return usagef("--callers: want at least 1, got %d", df.callers)
				}
				df.gor = (df.callers + df.procs - 1) / df.procs
			}
			if df.gor < 1 {
				return usagef("--goroutines: want at least 1, got %d", df.gor)
			}
			if df.work < 0 {
				return usagef("--work: want a duration that is not negative, got %v", df.work)
			}
			return runDemo(cmd.Context(), e, df, jsonOut(cmd))
		},
	}
	f := cmd.Flags()
	f.IntVar(&df.procs, "processes", 4, "number of worker processes")
	f.IntVar(&df.gor, "goroutines", 32, "goroutines per process")
	f.IntVar(&df.callers, "callers", 0, "total callers, spread over the processes (overrides --goroutines)")
	f.DurationVar(&df.work, "work", 200*time.Millisecond, "how long the creator takes")
	f.StringVar(&df.dir, "dir", "", "cache directory to use (default: a new temporary directory, removed afterwards)")
	return cmd
}

func runDemo(ctx context.Context, e *env, df *demoFlags, asJSON bool) error {
	procs, gor, work, dir := &df.procs, &df.gor, &df.work, &df.dir
	out := e.stdout
	if asJSON {
		out = io.Discard
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "regioncache-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program to start workers: %w", err)
	}
	// Values older than this are stale; long enough that the first
	// stampede sees a fresh value once it is created.
	expiration := max(500*time.Millisecond, 2**work)
	key := "report:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := demoConfig{dir: *dir, key: key, goroutines: *gor, work: *work, expiration: expiration}

	fmt.Fprintf(out, "stampede: %d processes × %d goroutines ask a filesystem region in %s for one cold key at once\n",
		*procs, *gor, *dir)
	cold, elapsed, err := stampede(ctx, exe, *procs, cfg)
	if err != nil {
		return err
	}
	rep := demoReport{Dir: *dir, Cold: demoPhase{cold, ms(elapsed)}}
	printDemo(out, cold, elapsed)
	if cold.Errors > 0 {
		return fmt.Errorf("%d callers failed; first error: %s", cold.Errors, cold.FirstError)
	}

	// Let the value expire, then stampede again: one caller regenerates,
	// everyone else is served the stale value at once.
	select {
	case <-time.After(expiration):
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Fprintf(out, "\nexpired: the value is now older than the region's expiration (%v); the same callers ask again\n", expiration)
	cfg.round = 2
	hot, elapsed, err := stampede(ctx, exe, *procs, cfg)
	if err != nil {
		return err
	}
	rep.Expired = demoPhase{hot, ms(elapsed)}
	printDemo(out, hot, elapsed)
	if hot.Errors > 0 {
		return fmt.Errorf("%d callers failed; first error: %s", hot.Errors, hot.FirstError)
	}
	if asJSON {
		return writeJSON(e.stdout, rep)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printDemo(w io.Writer, r demoResult, elapsed time.Duration) {
	fmt.Fprintf(w, "callers: %d\n", r.Callers)
	fmt.Fprintf(w, "creations: %d\n", r.Creations)
	fmt.Fprintf(w, "served stale: %d\n", r.Stale)
	fmt.Fprintf(w, "waited for the creator: %d\n", r.Waits)
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
	if r.Stale > 0 {
		fmt.Fprintf(w, "slowest stale: %v\n", time.Duration(r.SlowestStaleNs))
	}
	fmt.Fprintf(w, "elapsed: %v\n", elapsed.Round(time.Millisecond))
}

type demoConfig struct {
	round      int
	dir, key   string
	goroutines int
	work       time.Duration
	expiration time.Duration
}

// stampede starts the worker processes, waits until each is ready, releases
// them together (by closing their stdin) and sums their reports.
func stampede(ctx context.Context, exe string, procs int, cfg demoConfig) (demoResult, time.Duration, error) {
	type worker struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	var sum demoResult
	ws := make([]*worker, 0, procs)
	defer func() {
		for _, w := range ws {
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	}()
	for range procs {
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), demoWorkerEnv+"=1",
			"REGIONCACHE_DEMO_DIR="+cfg.dir, "REGIONCACHE_DEMO_KEY="+cfg.key,
			"REGIONCACHE_DEMO_GOROUTINES="+strconv.Itoa(cfg.goroutines),
			"REGIONCACHE_DEMO_WORK="+cfg.work.String(),
			"REGIONCACHE_DEMO_ROUND="+strconv.Itoa(cfg.round),
			"REGIONCACHE_DEMO_EXPIRATION="+cfg.expiration.String())
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return sum, 0, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return sum, 0, err
		}
		if err := cmd.Start(); err != nil {
			return sum, 0, fmt.Errorf("start worker: %w", err)
		}
		ws = append(ws, &worker{cmd: cmd, stdin: in, out: bufio.NewReader(out)})
	}
	for _, w := range ws {
		line, err := w.out.ReadString('\n')
		if err != nil || line != "ready\n" {
			return sum, 0, fmt.Errorf("worker did not start: %q %v", line, err)
		}
	}
	t0 := time.Now()
	for _, w := range ws {
		w.stdin.Close()
	}
	for _, w := range ws {
		var r demoResult
		if err := json.NewDecoder(w.out).Decode(&r); err != nil {
			return sum, 0, fmt.Errorf("worker report: %w", err)
		}
		sum.Callers += r.Callers
		sum.Creations += r.Creations
		sum.Stale += r.Stale
		sum.Waits += r.Waits
		sum.Errors += r.Errors
		sum.SlowestStaleNs = max(sum.SlowestStaleNs, r.SlowestStaleNs)
		if sum.FirstError == "" {
			sum.FirstError = r.FirstError
		}
	}
	elapsed := time.Since(t0)
	for _, w := range ws {
		if err := w.cmd.Wait(); err != nil {
			return sum, elapsed, fmt.Errorf("worker: %w", err)
		}
	}
	ws = nil
	return sum, elapsed, nil
}

// demoWorker is one worker process: it opens the filesystem region, says
// "ready", waits for stdin to close, runs its goroutines against the key and
// prints its demoResult.
func demoWorker() int {
	gor, _ := strconv.Atoi(os.Getenv("REGIONCACHE_DEMO_GOROUTINES"))
	work, _ := time.ParseDuration(os.Getenv("REGIONCACHE_DEMO_WORK"))
	exp, _ := time.ParseDuration(os.Getenv("REGIONCACHE_DEMO_EXPIRATION"))
	key := os.Getenv("REGIONCACHE_DEMO_KEY")
	round := " in round " + os.Getenv("REGIONCACHE_DEMO_ROUND")
	r, err := region.Open("filesystem", backends.Args{"base_dir": os.Getenv("REGIONCACHE_DEMO_DIR")}, region.WithExpiration(exp))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo worker:", err)
		return 1
	}
	defer r.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)

	ctx := context.Background()
	var res demoResult
	var creations, failed, slowestStale atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range gor {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			v, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) (string, error) {
				creations.Add(1)
				select {
				case <-time.After(work):
				case <-ctx.Done():
					return "", ctx.Err()
				}
				return "expensive result made by process " + strconv.Itoa(os.Getpid()) + round, nil
			})
			if d := time.Since(t0).Nanoseconds(); err == nil && !strings.HasSuffix(v, round) {
				// Served an earlier round's value: a stale caller.
				for cur := slowestStale.Load(); d > cur && !slowestStale.CompareAndSwap(cur, d); cur = slowestStale.Load() {
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	res.Callers = int64(gor)
	res.Creations = creations.Load()
	res.Stale = st.StaleServed
	res.Waits = st.LockWaits
	res.Errors = failed.Load()
	res.SlowestStaleNs = slowestStale.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}
