// Package stampedetest holds the cross-process stampede measurements that
// hold every shared backend to the same bar (DESIGN §9): 8 processes × 32
// goroutines ask for one cold key whose creator takes 200 ms; exactly one
// creation, and the last caller returns within 20 ms of the creator's end.
// The test re-executes its own binary as the worker processes.
package stampedetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	_ "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/region"
)

const workerEnv = "REGIONCACHE_STAMPEDE_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "" {
		os.Exit(m.Run())
	}
	res, err := worker()
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

type result struct {
	Callers, Creations, Fresh int
	CreatorEnd                int64   // wall clock, unix ns; 0 if this process did not create
	Returns                   []int64 // wall clock of each caller's return, unix ns
	Errors                    []string
}

// worker opens the region the parent describes, waits for the start signal
// (stdin closed), and runs the goroutines.
func worker() (result, error) {
	var res result
	var args backends.Args
	if err := json.Unmarshal([]byte(os.Getenv("STAMPEDE_ARGS")), &args); err != nil {
		return res, err
	}
	r, err := region.Open(os.Getenv("STAMPEDE_BACKEND"), args)
	if err != nil {
		return res, err
	}
	defer r.Close()
	g, _ := strconv.Atoi(os.Getenv("STAMPEDE_GOROUTINES"))
	work, _ := time.ParseDuration(os.Getenv("STAMPEDE_WORK"))
	key := os.Getenv("STAMPEDE_KEY")
	ctx := context.Background()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	var mu sync.Mutex
	var creations atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) (string, error) {
				creations.Add(1)
				time.Sleep(work)
				mu.Lock()
				res.CreatorEnd = time.Now().UnixNano()
				mu.Unlock()
				return "created", nil
			})
			now := time.Now().UnixNano()
			mu.Lock()
			defer mu.Unlock()
			res.Callers++
			res.Returns = append(res.Returns, now)
			switch {
			case err != nil:
				res.Errors = append(res.Errors, err.Error())
			case v == "created":
				res.Fresh++
			default:
				res.Errors = append(res.Errors, "unexpected value "+v)
			}
		}()
	}
	wg.Wait()
	res.Creations = int(creations.Load())
	return res, nil
}

// stampede runs one round: procs workers × goroutines callers on one cold
// key. It returns the number of creations and how long after the creator's
// end the last caller returned.
func stampede(t *testing.T, backend string, args backends.Args, key string, procs, goroutines int, work time.Duration) (int, time.Duration) {
	t.Helper()
	aj, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	ps := make([]proc, procs)
	for i := range ps {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1", "STAMPEDE_BACKEND="+backend, "STAMPEDE_ARGS="+string(aj),
			"STAMPEDE_GOROUTINES="+strconv.Itoa(goroutines), "STAMPEDE_WORK="+work.String(), "STAMPEDE_KEY="+key)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ps[i] = proc{cmd, stdin, bufio.NewReader(stdout)}
	}
	for i, p := range ps {
		line, err := p.out.ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("worker %d: %q, %v", i, line, err)
		}
	}
	for _, p := range ps {
		p.stdin.Close()
	}
	var creations int
	var creatorEnd, last int64
	for i, p := range ps {
		var res result
		if err := json.NewDecoder(p.out).Decode(&res); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		p.cmd.Wait()
		if len(res.Errors) > 0 {
			t.Fatalf("worker %d: %q", i, res.Errors)
		}
		if res.Callers != goroutines || res.Fresh != goroutines {
			t.Fatalf("worker %d: %d callers, %d got the created value; want %d", i, res.Callers, res.Fresh, goroutines)
		}
		creations += res.Creations
		creatorEnd = max(creatorEnd, res.CreatorEnd)
		last = max(last, slices.Max(res.Returns))
	}
	return creations, time.Duration(last - creatorEnd)
}

// coldStampede runs rounds of the 8 × 32 cold-key stampede with a 200 ms
// creator, requires exactly one creation per round and logs the tail: the
// last caller's return after the creator's end (bar: ≤ 20 ms).
func coldStampede(t *testing.T, backend string, args func(round int) backends.Args) {
	const procs, goroutines, rounds = 8, 32, 3
	const work = 200 * time.Millisecond
	if testing.Short() {
		t.Skip("starts 24 processes")
	}
	var tails []time.Duration
	for round := range rounds {
		n, tail := stampede(t, backend, args(round), fmt.Sprintf("cold-%d-%d", round, time.Now().UnixNano()), procs, goroutines, work)
		if n != 1 {
			t.Fatalf("round %d: %d creations for %d callers in %d processes, want exactly 1", round, n, procs*goroutines, procs)
		}
		tails = append(tails, tail)
	}
	t.Logf("%s: %d × %d callers, %v creator: last caller returned %v after the creator's end (rounds; bar ≤ 20ms)", backend, procs, goroutines, work, tails)
}

func TestColdStampedeFilesystem(t *testing.T) {
	coldStampede(t, "filesystem", func(int) backends.Args { return backends.Args{"base_dir": t.TempDir()} })
}

func TestColdStampedeRedis(t *testing.T) {
	srv := redistest.Start(t)
	coldStampede(t, "redis", func(round int) backends.Args {
		return backends.Args{"url": srv.URL(0), "prefix": "stampede" + strconv.Itoa(round)}
	})
}
