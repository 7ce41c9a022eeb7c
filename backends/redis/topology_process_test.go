package redis_test

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
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/region"
)

// Environment of the topology helper (see TestRedisTopologyHelperProcess).
const (
	envTopoConn   = "REGIONCACHE_REDIS_TOPO_CONN"   // JSON backends.Args: how to connect
	envTopoKeys   = "REGIONCACHE_REDIS_TOPO_KEYS"   // how many keys, one after another
	envTopoSleep  = "REGIONCACHE_REDIS_TOPO_SLEEP"  // creator time
	envTopoPrefix = "REGIONCACHE_REDIS_TOPO_PREFIX" // region prefix
	envTopoFor    = "REGIONCACHE_REDIS_TOPO_FOR"    // keep going through the keys for this long
)

// universal returns a go-redis client for the same servers as conn.
func universal(conn backends.Args) goredis.UniversalClient {
	o := &goredis.UniversalOptions{MaxRetries: 5}
	if a, ok := conn["addrs"].(string); ok {
		o.Addrs = strings.Split(a, ",")
	}
	if m, ok := conn["master_name"].(string); ok {
		o.MasterName = m
	}
	if c, ok := conn["cluster"].(bool); ok {
		o.IsClusterMode = c
	}
	return goredis.NewUniversalClient(o)
}

// TestRedisTopologyHelperProcess is not a test: it is one process of the
// Cluster, Sentinel and fail-over stampedes. After a start barrier, each of
// its 32 goroutines runs GetOrCreate on keys k0, k1, ... in turn, retrying a
// key whose call failed (a server killed mid-call) until it succeeds or a
// minute passes. Each creation increments "creations:<key>" and returns
// "fresh-<key>-<pid>". It prints each value with the key asked for, the
// number of failed calls, and its region's stats.
func TestRedisTopologyHelperProcess(t *testing.T) {
	if os.Getenv(envTopoConn) == "" {
		t.Skip("helper process for the topology stampedes")
	}
	if err := topoHelper(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func topoHelper() error {
	ctx := context.Background()
	var conn backends.Args
	if err := json.Unmarshal([]byte(os.Getenv(envTopoConn)), &conn); err != nil {
		return err
	}
	keys, _ := strconv.Atoi(os.Getenv(envTopoKeys))
	sleep, _ := time.ParseDuration(os.Getenv(envTopoSleep))
	args := backends.Args{"prefix": os.Getenv(envTopoPrefix), "lock_timeout": "2s", "socket_timeout": "1s"}
	for k, v := range conn {
		args[k] = v
	}
	r, err := region.Open("redis", args, region.WithExpiration(time.Minute))
	if err != nil {
		return err
	}
	defer r.Close()
	c := universal(conn)
	defer c.Close()
	const goroutines = 32
	var warm sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		warm.Add(1)
		go func() { defer warm.Done(); _, _ = region.Get[string](ctx, r, "warm-up") }()
	}
	warm.Wait()
	fmt.Println("ready")
	if err := c.BLPop(ctx, time.Minute, "{topo}barrier").Err(); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	pid := strconv.Itoa(os.Getpid())
	runFor, _ := time.ParseDuration(os.Getenv(envTopoFor))
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[[2]string]int{} // (key, value) -> calls
	failed, gaveUp := 0, 0
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass == 0 || time.Since(began) < runFor; pass++ {
				if pass > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				for i := 0; i < keys; i++ {
					key := "k" + strconv.Itoa(i)
					deadline := time.Now().Add(time.Minute)
					for {
						v, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) (string, error) {
							if err := c.Incr(ctx, "{topo}creations:"+key).Err(); err != nil {
								return "", err
							}
							time.Sleep(sleep)
							return "fresh-" + key + "-" + pid, nil
						})
						mu.Lock()
						if err == nil {
							got[[2]string{key, v}]++
							mu.Unlock()
							break
						}
						failed++
						mu.Unlock()
						if time.Now().After(deadline) {
							mu.Lock()
							gaveUp++
							mu.Unlock()
							break
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
			}
		}()
	}
	wg.Wait()
	for kv, n := range got {
		fmt.Printf("value %s %s %d\n", kv[0], kv[1], n)
	}
	fmt.Printf("gaveup %d\n", gaveUp)
	st := r.Stats()
	fmt.Printf("stats failed=%d creations=%d lockslost=%d\n", failed, st.Creations, st.LocksLost)
	return nil
}

type topoResult struct {
	values                               map[string]map[string]int // key -> value returned -> calls
	gaveUp, failed, creations, locksLost int
}

// topoStampede runs procs helper processes on conn, releases them together,
// calls during (if not nil) once they run, and gathers what they got.
func topoStampede(t *testing.T, conn backends.Args, prefix string, procs, keys int, sleep, runFor time.Duration, during func()) topoResult {
	t.Helper()
	c := universal(conn)
	defer c.Close()
	ctx := context.Background()
	js, _ := json.Marshal(conn)
	type proc struct {
		cmd *exec.Cmd
		out *bufio.Reader
	}
	ps := make([]proc, procs)
	for i := range ps {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRedisTopologyHelperProcess$")
		cmd.Env = append(os.Environ(), envTopoConn+"="+string(js), envTopoKeys+"="+strconv.Itoa(keys),
			envTopoSleep+"="+sleep.String(), envTopoPrefix+"="+prefix, envTopoFor+"="+runFor.String())
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
	tokens := make([]any, procs)
	for i := range tokens {
		tokens[i] = "go"
	}
	if err := c.LPush(ctx, "{topo}barrier", tokens...).Err(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	res := topoResult{values: map[string]map[string]int{}}
	for i, p := range ps {
		rest, _ := io.ReadAll(p.out)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, rest)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(rest)), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 4 && f[0] == "value":
				n, _ := strconv.Atoi(f[3])
				if res.values[f[1]] == nil {
					res.values[f[1]] = map[string]int{}
				}
				res.values[f[1]][f[2]] += n
			case len(f) == 2 && f[0] == "gaveup":
				n, _ := strconv.Atoi(f[1])
				res.gaveUp += n
			case len(f) == 4 && f[0] == "stats":
				var failed, creations, lost int
				fmt.Sscanf(f[1], "failed=%d", &failed)
				fmt.Sscanf(f[2], "creations=%d", &creations)
				fmt.Sscanf(f[3], "lockslost=%d", &lost)
				res.failed += failed
				res.creations += creations
				res.locksLost += lost
			default:
				t.Fatalf("process %d: unexpected line %q", i, line)
			}
		}
	}
	return res
}

// wrongValues counts values that are neither a creation of the key asked
// for nor the stale value planted for it.
func (r topoResult) wrongValues() int {
	n := 0
	for key, vs := range r.values {
		for v, calls := range vs {
			if !strings.HasPrefix(v, "fresh-"+key+"-") && v != "stale-"+key {
				n += calls
			}
		}
	}
	return n
}

// plantStale stores an expired value "stale-<key>" for keys k0..k<n-1>
// under prefix, as the helpers' region would read it.
func plantStale(t *testing.T, conn backends.Args, prefix string, n int) {
	t.Helper()
	args := backends.Args{"prefix": prefix}
	for k, v := range conn {
		args[k] = v
	}
	r, err := region.Open("redis", args, region.WithExpiration(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		key := "k" + strconv.Itoa(i)
		if err := r.Backend().Set(ctx, key, backends.Entry{Payload: []byte("stale-" + key), Created: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMultiProcessCluster: 8 processes × 32 goroutines on cold keys of a
// real Cluster, in both layouts: exactly one creation per key.
func TestMultiProcessCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	for _, layout := range []string{"slot", "spread"} {
		t.Run(layout, func(t *testing.T) {
			conn := backends.Args{"addrs": strings.Join(c.Addrs(), ","), "cluster": true, "cluster_layout": layout}
			const procs, keys = 8, 3
			res := topoStampede(t, conn, "mp-"+layout, procs, keys, 200*time.Millisecond, 0, nil)
			checkExactlyOnce(t, res, procs, keys)
		})
	}
}

// TestMultiProcessSentinel: the same through Sentinel.
func TestMultiProcessSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	conn := backends.Args{"addrs": strings.Join(s.Addrs(), ","), "master_name": redistest.SentinelMaster}
	const procs, keys = 8, 3
	res := topoStampede(t, conn, "mp-sentinel", procs, keys, 200*time.Millisecond, 0, nil)
	checkExactlyOnce(t, res, procs, keys)
}

func checkExactlyOnce(t *testing.T, res topoResult, procs, keys int) {
	t.Helper()
	if w := res.wrongValues(); w != 0 || res.gaveUp != 0 || res.failed != 0 {
		t.Fatalf("wrong values %d, calls given up %d, failed calls %d", w, res.gaveUp, res.failed)
	}
	for i := 0; i < keys; i++ {
		key := "k" + strconv.Itoa(i)
		vs := res.values[key]
		if len(vs) != 1 {
			t.Fatalf("%s: values %v: more than one creation", key, vs)
		}
		for v, n := range vs {
			if n != procs*32 {
				t.Fatalf("%s: %q returned %d times, want %d", key, v, n, procs*32)
			}
		}
	}
	if res.creations != keys {
		t.Fatalf("regions report %d creations for %d keys, want exactly one each", res.creations, keys)
	}
}

// TestFailoverStampede: 8 processes × 32 goroutines run through 8 keys via
// Sentinel while the master is killed (SIGKILL) mid-stampede, twice (the
// old master restarted as a replica in between): cold keys, then expired
// ones (callers may get the stale value or a fresh one, nothing else). Calls fail while
// there is no master and recover after the promotion. Asserted: no wrong
// value, every caller eventually served. Reported: failed calls, duplicate
// creations (the new master may lack the lock keys and writes the old one
// acknowledged: asynchronous replication), and stores refused because the
// creator's lock was lost (fenced stores: a creator whose lock was lost
// never stores).
func TestFailoverStampede(t *testing.T) {
	s := redistest.StartSentinel(t)
	conn := backends.Args{"addrs": strings.Join(s.Addrs(), ","), "master_name": redistest.SentinelMaster}
	const procs, keys = 8, 8
	for round := 0; round < 2; round++ {
		master, err := s.Master()
		if err != nil {
			t.Fatal(err)
		}
		prefix := "failover" + strconv.Itoa(round)
		kind := "cold"
		if round == 1 {
			kind = "expired"
			plantStale(t, conn, prefix, keys)
		}
		// The processes keep going through the keys for 8 s; the master is
		// killed 700 ms in, and Sentinel promotes the replica a few seconds
		// later: calls in between fail (and are retried).
		res := topoStampede(t, conn, prefix, procs, keys, 300*time.Millisecond, 8*time.Second, func() {
			time.Sleep(700 * time.Millisecond)
			master.Kill()
		})
		dup := res.creations - keys
		t.Logf("round %d, %s keys (killed %s): failed calls %d, creations %d for %d keys (duplicates %d), stores refused for a lost lock %d, wrong values %d, callers never served %d",
			round, kind, master.Addr(), res.failed, res.creations, keys, dup, res.locksLost, res.wrongValues(), res.gaveUp)
		if w := res.wrongValues(); w != 0 {
			t.Fatalf("round %d: %d wrong values", round, w)
		}
		if res.gaveUp != 0 {
			t.Fatalf("round %d: %d callers never served after the fail-over", round, res.gaveUp)
		}
		for i := 0; i < keys; i++ {
			if len(res.values["k"+strconv.Itoa(i)]) == 0 {
				t.Fatalf("round %d: k%d: no value returned", round, i)
			}
		}
		if m, err := s.Master(); err != nil || m == master {
			t.Fatalf("round %d: no fail-over happened (master %v, %v)", round, m, err)
		}
		if round == 1 {
			break
		}
		// Bring the killed node back; Sentinel makes it a replica of the new
		// master.
		master.Restart(0)
		if err := s.WaitReady(60 * time.Second); err != nil {
			t.Fatalf("after round %d: %v", round, err)
		}
	}
}
