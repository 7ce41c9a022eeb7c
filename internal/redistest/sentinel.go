package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the sentinels of StartSentinel monitor.
const SentinelMaster = "rcmaster"

// Sentinel is a private Sentinel setup: a master, a replica and three
// sentinels with a quorum of two, on loopback ports. Which of Servers is the
// master changes with fail-overs; Master asks the sentinels.
type Sentinel struct {
	tb        testing.TB
	Servers   []*Server // the data nodes: [0] starts as master, [1] as its replica
	Sentinels []*Server
}

// StartSentinel starts the setup, waits until the sentinels agree on the
// master and know its replica, and stops it when the test ends. A master
// that is unreachable for a second is failed over.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	root := tb.TempDir()
	dir := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	s := &Sentinel{tb: tb}
	master := startWith(tb, dir("master"), []string{"--repl-diskless-sync-delay", "0"}, 0)
	replica := startWith(tb, dir("replica"), []string{"--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", strconv.Itoa(master.Port())}, 0)
	s.Servers = []*Server{master, replica}
	for i := 0; i < 3; i++ {
		d := dir("sentinel" + strconv.Itoa(i))
		conf := filepath.Join(d, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 3000\n"+
			"sentinel parallel-syncs %s 1\n", SentinelMaster, master.Port(), SentinelMaster, SentinelMaster, SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		sn := &Server{tb: tb, bin: redisServer(tb), dir: d, sentinel: conf}
		if err := sn.launch(0); err != nil {
			tb.Fatalf("redistest: starting a sentinel: %v", err)
		}
		s.Sentinels = append(s.Sentinels, sn)
	}
	if err := s.WaitReady(30 * time.Second); err != nil {
		tb.Fatalf("redistest: sentinel setup did not come up: %v", err)
	}
	return s
}

// Addrs returns the sentinels' addresses.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr()
	}
	return out
}

// Master returns the data node that the sentinels currently name master.
func (s *Sentinel) Master() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var last error
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err != nil {
			last = err
			continue
		}
		for _, n := range s.Servers {
			if len(addr) == 2 && n.Addr() == addr[0]+":"+addr[1] {
				return n, nil
			}
		}
		last = fmt.Errorf("sentinel %s names master %v, not a node of this setup", sn.Addr(), addr)
	}
	if last == nil {
		last = fmt.Errorf("no sentinel running")
	}
	return nil, last
}

// WaitReady waits until every running sentinel names a running master that
// has a connected replica.
func (s *Sentinel) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = s.ready(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// WaitReadyNoReplica waits, like WaitReady, for the sentinels to agree on a
// running master, without asking for a replica (after a fail-over whose old
// master is still down).
func (s *Sentinel) WaitReadyNoReplica(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = s.check(false); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func (s *Sentinel) ready() error { return s.check(true) }

func (s *Sentinel) check(needReplica bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var master string
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		var replicas []map[string]string
		if err == nil {
			replicas, err = c.Replicas(ctx, SentinelMaster).Result()
		}
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		m := addr[0] + ":" + addr[1]
		if master != "" && m != master {
			return fmt.Errorf("sentinels disagree: %s and %s", master, m)
		}
		master = m
		ok := false
		for _, r := range replicas {
			if r["flags"] == "slave" && r["master-link-status"] == "ok" {
				ok = true
			}
		}
		if !ok && needReplica {
			return fmt.Errorf("sentinel %s knows no healthy replica of %s yet", sn.Addr(), m)
		}
	}
	for _, n := range s.Servers {
		if n.Addr() == master {
			if !n.Running() {
				return fmt.Errorf("master %s is down", master)
			}
			c := redis.NewClient(&redis.Options{Addr: master, MaxRetries: -1})
			role, err := c.Do(ctx, "role").Slice()
			_ = c.Close()
			if err != nil || len(role) == 0 || role[0] != "master" {
				return fmt.Errorf("%s is not a master yet: %v %v", master, role, err)
			}
			return nil
		}
	}
	return fmt.Errorf("master %q unknown", master)
}
