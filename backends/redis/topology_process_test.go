package redis_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
)

// topoKind is the kind of the topology stampede's workers (topoWorker).
const topoKind = "redis-topology"

// topoSpec is what a topology worker does.
type topoSpec struct {
	Conn   backends.Args // how to connect: addrs, and cluster or master_name
	Prefix string        // region prefix
	Keys   int           // how many keys, one after another
	Sleep  time.Duration // creator time
	RunFor time.Duration // keep going through the keys for this long
}

// topoResult is what the topology workers got, one worker's or summed.
type topoResult struct {
	Values                               map[string]map[string]int // key -> value returned -> calls
	GaveUp, Failed, Creations, LocksLost int
}

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

// topoWorker is one process of the Cluster, Sentinel and fail-over
// stampedes. Once released, each of its 32 goroutines runs GetOrCreate on
// keys k0, k1, ... in turn, retrying a key whose call failed (a server killed
// mid-call) until it succeeds or a minute passes. Each creation increments
// "creations:<key>" on the servers (a write that can fail mid-fail-over) and
// returns "fresh-<key>-<pid>". It reports each value with the key asked for,
// the failed calls, the callers that gave up, and its region's stats.
func topoWorker(spec topoSpec) (any, error) {
	ctx := context.Background()
	args := backends.Args{"prefix": spec.Prefix, "lock_timeout": "2s", "socket_timeout": "1s"}
	for k, v := range spec.Conn {
		args[k] = v
	}
	r, err := region.Open("redis", args, region.WithExpiration(time.Minute))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	c := universal(spec.Conn)
	defer c.Close()
	const goroutines = 32
	var warm sync.WaitGroup
	for range goroutines {
		warm.Go(func() { _, _ = region.Get[string](ctx, r, "warm-up") })
	}
	warm.Wait()
	stampedetest.Ready()
	pid := strconv.Itoa(os.Getpid())
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	res := topoResult{Values: map[string]map[string]int{}}
	for range goroutines {
		wg.Go(func() {
			for pass := 0; pass == 0 || time.Since(began) < spec.RunFor; pass++ {
				if pass > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				for i := 0; i < spec.Keys; i++ {
					key := "k" + strconv.Itoa(i)
					deadline := time.Now().Add(time.Minute)
					for {
						v, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) (string, error) {
							if err := c.Incr(ctx, "{topo}creations:"+key).Err(); err != nil {
								return "", err
							}
							time.Sleep(spec.Sleep)
							return "fresh-" + key + "-" + pid, nil
						})
						mu.Lock()
						if err == nil {
							if res.Values[key] == nil {
								res.Values[key] = map[string]int{}
							}
							res.Values[key][v]++
							mu.Unlock()
							break
						}
						res.Failed++
						if time.Now().After(deadline) {
							res.GaveUp++
							mu.Unlock()
							break
						}
						mu.Unlock()
						time.Sleep(50 * time.Millisecond)
					}
				}
			}
		})
	}
	wg.Wait()
	st := r.Stats()
	res.Creations, res.LocksLost = int(st.Creations), int(st.LocksLost)
	return res, nil
}

// topoStampede runs procs topology workers on conn, releases them together,
// calls during (if not nil) once they run, and sums what they got.
func topoStampede(t *testing.T, conn backends.Args, prefix string, procs, keys int, sleep, runFor time.Duration, during func()) topoResult {
	t.Helper()
	spec := topoSpec{Conn: conn, Prefix: prefix, Keys: keys, Sleep: sleep, RunFor: runFor}
	ws := stampedetest.LaunchAll(t, procs, topoKind, func(int) any { return spec })
	stampedetest.ReleaseAll(ws)
	if during != nil {
		during()
	}
	sum := topoResult{Values: map[string]map[string]int{}}
	for _, r := range stampedetest.Results[topoResult](t, ws) {
		for key, vs := range r.Values {
			if sum.Values[key] == nil {
				sum.Values[key] = map[string]int{}
			}
			for v, n := range vs {
				sum.Values[key][v] += n
			}
		}
		sum.GaveUp += r.GaveUp
		sum.Failed += r.Failed
		sum.Creations += r.Creations
		sum.LocksLost += r.LocksLost
	}
	return sum
}

// wrongValues counts values that are neither a creation of the key asked
// for nor the stale value planted for it.
func (r topoResult) wrongValues() int {
	n := 0
	for key, vs := range r.Values {
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
	if w := res.wrongValues(); w != 0 || res.GaveUp != 0 || res.Failed != 0 {
		t.Fatalf("wrong values %d, calls given up %d, failed calls %d", w, res.GaveUp, res.Failed)
	}
	for i := 0; i < keys; i++ {
		key := "k" + strconv.Itoa(i)
		vs := res.Values[key]
		if len(vs) != 1 {
			t.Fatalf("%s: values %v: more than one creation", key, vs)
		}
		for v, n := range vs {
			if n != procs*32 {
				t.Fatalf("%s: %q returned %d times, want %d", key, v, n, procs*32)
			}
		}
	}
	if res.Creations != keys {
		t.Fatalf("regions report %d creations for %d keys, want exactly one each", res.Creations, keys)
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
		dup := res.Creations - keys
		t.Logf("round %d, %s keys (killed %s): failed calls %d, creations %d for %d keys (duplicates %d), stores refused for a lost lock %d, wrong values %d, callers never served %d",
			round, kind, master.Addr(), res.Failed, res.Creations, keys, dup, res.LocksLost, res.wrongValues(), res.GaveUp)
		if w := res.wrongValues(); w != 0 {
			t.Fatalf("round %d: %d wrong values", round, w)
		}
		if res.GaveUp != 0 {
			t.Fatalf("round %d: %d callers never served after the fail-over", round, res.GaveUp)
		}
		for i := 0; i < keys; i++ {
			if len(res.Values["k"+strconv.Itoa(i)]) == 0 {
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
