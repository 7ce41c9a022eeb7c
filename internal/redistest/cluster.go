package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/internal/servertest"
)

// Cluster is a private Redis Cluster: three masters, each with one replica,
// on loopback ports. Nodes are in Nodes; the first three start as masters.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
}

// clusterNodeTimeout is how long a node must be unreachable before the
// cluster fails over to its replica.
const clusterNodeTimeout = 3000 * time.Millisecond

// StartCluster starts a Redis Cluster of six nodes (three masters, three
// replicas) with redis-server --cluster-enabled and redis-cli --cluster
// create, waits until every slot is served, and stops it when the test ends.
// A node that is unreachable for about three seconds is failed over.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	redisServer(tb)
	cli := servertest.Binary(tb, "redis-cli", RequireEnv)
	c := &Cluster{tb: tb}
	root := tb.TempDir()
	for i := 0; i < 6; i++ {
		dir := filepath.Join(root, "node"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		port, err := clusterPort()
		if err != nil {
			tb.Fatalf("redistest: finding free ports for a cluster node: %v", err)
		}
		c.Nodes = append(c.Nodes, startWith(tb, dir, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
			"--cluster-require-full-coverage", "no",
			// A replica may always take over, however old its data.
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0",
		}, port))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		tb.Fatalf("redistest: cluster did not come up: %v", err)
	}
	return c
}

// clusterPort returns a free port whose cluster bus port (port+10000) is
// free too.
func clusterPort() (int, error) {
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			_ = l.Close()
			// Ask for one in a lower range.
			p = 20000 + int(time.Now().UnixNano()%20000)
			l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = bus.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no port with a free bus port found")
}

// Addrs returns the nodes' "127.0.0.1:port" addresses (seed nodes for a
// client).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client returns a new go-redis Cluster client, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterFor returns the node that serves key's slot now.
func (c *Cluster) MasterFor(key string) (*Server, error) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc.ReloadState(ctx)
	m, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return nil, err
	}
	addr := m.Options().Addr
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("master %s of %q is not a node of this cluster", addr, key)
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// every slot is served by a running master.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.healthy(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%w\n%s", last, c.describe())
}

// describe returns CLUSTER NODES as one running node sees it.
func (c *Cluster) describe() string {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, err := cl.ClusterNodes(ctx).Result()
		cancel()
		_ = cl.Close()
		if err == nil {
			return "CLUSTER NODES at " + n.Addr() + ":\n" + out
		}
	}
	return "(no node answers CLUSTER NODES)"
}

func (c *Cluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("node %s: cluster_state not ok", n.Addr())
		}
		if err == nil {
			var shards []redis.ClusterShard
			shards, err = cl.ClusterShards(ctx).Result()
			covered := int64(0)
			for _, sh := range shards {
				if len(sh.Slots) == 0 {
					continue
				}
				master := ""
				for _, nd := range sh.Nodes {
					if nd.Role == "master" && nd.Health == "online" {
						master = net.JoinHostPort(nd.IP, strconv.FormatInt(nd.Port, 10))
					}
				}
				for _, sr := range sh.Slots {
					covered += sr.End - sr.Start + 1
				}
				if master == "" || !c.running(master) {
					err = fmt.Errorf("slots %v served by %q, which is down", sh.Slots, master)
				}
			}
			if err == nil && covered != 16384 {
				err = fmt.Errorf("node %s: %d of 16384 slots covered", n.Addr(), covered)
			}
		}
		if err == nil {
			var info string
			info, err = cl.Info(ctx, "replication").Result()
			if err == nil && strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
				err = fmt.Errorf("replica %s has not synced with its master", n.Addr())
			}
		}
		_ = cl.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) running(addr string) bool {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n.Running()
		}
	}
	return false
}
