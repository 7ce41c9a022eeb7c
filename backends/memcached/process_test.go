package memcached_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/memcachedtest"
	"github.com/regioncache/regioncache/region"
)

// Environment of the helper process (see TestMemcachedHelperProcess).
const (
	envHelper     = "REGIONCACHE_MEMCACHED_HELPER"
	envAddr       = "REGIONCACHE_MEMCACHED_HELPER_ADDR"
	envPrefix     = "REGIONCACHE_MEMCACHED_HELPER_PREFIX"
	envGoroutines = "REGIONCACHE_MEMCACHED_HELPER_GOROUTINES"
	envSleep      = "REGIONCACHE_MEMCACHED_HELPER_SLEEP"
)

// TestMemcachedHelperProcess is not a test: it is one of the processes the
// stampede tests start. It opens its own region on the shared memcached,
// warms up, says "ready", waits for the start file to appear, then runs
// GetOrCreate on key "k" from many goroutines. The creator counts itself
// with an increment of "creations" and returns "fresh-<pid>".
func TestMemcachedHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) == "" {
		t.Skip("helper process for the multi-process tests")
	}
	if err := helperMain(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperMain() error {
	ctx := context.Background()
	addr := os.Getenv(envAddr)
	goroutines, _ := strconv.Atoi(os.Getenv(envGoroutines))
	sleep, _ := time.ParseDuration(os.Getenv(envSleep))
	r, err := region.Open("memcached", backends.Args{"url": addr, "prefix": os.Getenv(envPrefix), "lock_timeout": "10s", "socket_timeout": "10s"},
		region.WithExpiration(time.Minute))
	if err != nil {
		return err
	}
	defer r.Close()
	c := memcache.New(addr)
	c.MaxIdleConns = 4
	c.Timeout = 10 * time.Second // -race on a loaded machine
	var warm sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		warm.Add(1)
		go func() { defer warm.Done(); _, _ = region.Get[string](ctx, r, "warm-up") }()
	}
	warm.Wait()
	fmt.Println("ready")
	// Start barrier: poll for the start item (memcached has no blocking pop).
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := c.Get("start"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no start signal")
		}
		time.Sleep(200 * time.Microsecond)
	}
	pid := strconv.Itoa(os.Getpid())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lines []string
	var lastReturn int64
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			v, err := region.GetOrCreate(ctx, r, "k", func(ctx context.Context) (string, error) {
				if _, err := c.Increment("creations", 1); err != nil {
					return "", err
				}
				time.Sleep(sleep)
				if err := c.Set(&memcache.Item{Key: "creator_end", Value: []byte(strconv.FormatInt(time.Now().UnixNano(), 10))}); err != nil {
					return "", err
				}
				return "fresh-" + pid, nil
			})
			mu.Lock()
			defer mu.Unlock()
			lastReturn = max(lastReturn, time.Now().UnixNano())
			if err != nil {
				lines = append(lines, "error: "+err.Error())
				return
			}
			lines = append(lines, fmt.Sprintf("value %s %d", v, time.Since(start).Microseconds()))
		}()
	}
	wg.Wait()
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Printf("returned %d\n", lastReturn)
	st := r.Stats()
	fmt.Printf("stats creations=%d stale=%d\n", st.Creations, st.StaleServed)
	return nil
}

type procResult struct {
	values     []string
	micros     []int64
	lastReturn int64
	creations  int64
	stale      int64
}

func stampede(t *testing.T, srv *memcachedtest.Server, prefix string, procs, goroutines int, sleep time.Duration) []procResult {
	t.Helper()
	c := memcache.New(srv.Addr())
	c.Timeout = 10 * time.Second
	if err := c.Set(&memcache.Item{Key: "creations", Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	_ = c.Delete("start")
	type proc struct {
		cmd *exec.Cmd
		out *bufio.Reader
	}
	ps := make([]proc, procs)
	for i := range ps {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMemcachedHelperProcess$")
		cmd.Env = append(os.Environ(), envHelper+"=1", envAddr+"="+srv.Addr(), envPrefix+"="+prefix,
			envGoroutines+"="+strconv.Itoa(goroutines), envSleep+"="+sleep.String())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		ps[i] = proc{cmd, bufio.NewReader(out)}
	}
	for i, p := range ps {
		if line, err := p.out.ReadString('\n'); line != "ready\n" {
			t.Fatalf("process %d said %q, %v", i, line, err)
		}
	}
	if err := c.Set(&memcache.Item{Key: "start", Value: []byte("go")}); err != nil {
		t.Fatal(err)
	}
	res := make([]procResult, procs)
	for i, p := range ps {
		rest, _ := io.ReadAll(p.out)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, rest)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(rest)), "\n") {
			switch f := strings.Fields(line); {
			case len(f) == 3 && f[0] == "value":
				res[i].values = append(res[i].values, f[1])
				us, _ := strconv.ParseInt(f[2], 10, 64)
				res[i].micros = append(res[i].micros, us)
			case len(f) == 2 && f[0] == "returned":
				fmt.Sscanf(f[1], "%d", &res[i].lastReturn)
			case len(f) == 3 && f[0] == "stats":
				fmt.Sscanf(f[1], "creations=%d", &res[i].creations)
				fmt.Sscanf(f[2], "stale=%d", &res[i].stale)
			default:
				t.Fatalf("process %d: unexpected line %q", i, line)
			}
		}
		if len(res[i].values) != goroutines {
			t.Fatalf("process %d returned %d values, want %d", i, len(res[i].values), goroutines)
		}
	}
	return res
}

func counted(t *testing.T, srv *memcachedtest.Server, key string) int64 {
	t.Helper()
	c := memcache.New(srv.Addr())
	c.Timeout = 10 * time.Second
	it, err := c.Get(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(it.Value)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q", key, it.Value)
	}
	return n
}

// TestMultiProcessColdKey: 8 processes × 32 goroutines on one cold key:
// exactly one creation; everybody gets its value. Reported: when the last
// caller returned after the creator's end (bar: 20 ms).
func TestMultiProcessColdKey(t *testing.T) {
	srv := memcachedtest.Start(t)
	const procs, goroutines = 8, 32
	res := stampede(t, srv, "cold", procs, goroutines, 200*time.Millisecond)
	if n := counted(t, srv, "creations"); n != 1 {
		t.Fatalf("creations counted in memcached = %d, want exactly 1", n)
	}
	end := counted(t, srv, "creator_end")
	var last int64
	want := ""
	for i, r := range res {
		last = max(last, r.lastReturn)
		for _, v := range r.values {
			if want == "" {
				want = v
			}
			if v != want || !strings.HasPrefix(v, "fresh-") {
				t.Fatalf("process %d got %q, another got %q", i, v, want)
			}
		}
	}
	t.Logf("%d×%d callers, 200ms creator: last caller returned %v after the creator's end", procs, goroutines, time.Duration(last-end))
}

// TestMultiProcessExpiredKey: on an expired key exactly one caller of all
// processes regenerates; every other caller is served the stale value.
// Reported: the stale callers' latency.
func TestMultiProcessExpiredKey(t *testing.T) {
	srv := memcachedtest.Start(t)
	ctx := context.Background()
	r, err := region.Open("memcached", backends.Args{"url": srv.Addr(), "prefix": "expired", "socket_timeout": "10s"}, region.WithExpiration(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Backend().Set(ctx, "k", backends.Entry{Payload: []byte("stale"), Created: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const procs, goroutines = 8, 32
	res := stampede(t, srv, "expired", procs, goroutines, time.Second)
	if n := counted(t, srv, "creations"); n != 1 {
		t.Fatalf("creations counted in memcached = %d, want exactly 1", n)
	}
	fresh, stale := 0, 0
	var staleUS []int64
	for _, r := range res {
		for i, v := range r.values {
			switch {
			case v == "stale":
				stale++
				staleUS = append(staleUS, r.micros[i])
			case strings.HasPrefix(v, "fresh-"):
				fresh++
			default:
				t.Fatalf("unexpected value %q", v)
			}
		}
	}
	if fresh != 1 || stale != procs*goroutines-1 {
		t.Fatalf("fresh %d, stale %d; want 1 and %d", fresh, stale, procs*goroutines-1)
	}
	slices.Sort(staleUS)
	t.Logf("%d×%d callers on an expired key: stale callers' latency median %v p99 %v max %v", procs, goroutines,
		time.Duration(staleUS[len(staleUS)/2])*time.Microsecond, time.Duration(staleUS[len(staleUS)*99/100])*time.Microsecond,
		time.Duration(staleUS[len(staleUS)-1])*time.Microsecond)
}
