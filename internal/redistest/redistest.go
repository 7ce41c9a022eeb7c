// Package redistest starts private redis-server processes for regioncache's
// tests and benchmarks, so that no test ever depends on (or disturbs) a Redis
// server that happens to be running on the machine.
//
// Start launches redis-server on a free loopback port, in a temporary
// directory, with persistence off, and stops it when the test ends.
// StartCluster starts a Redis Cluster of three masters and three replicas,
// and StartSentinel a master, a replica and three sentinels; any node can be
// killed, restarted, or stalled (SIGSTOP) and resumed. When
// redis-server is not installed the test is skipped, unless the environment
// variable REGIONCACHE_REQUIRE_REDIS is "1", in which case it fails: CI sets
// it so that a missing server can never silently skip the Redis tests.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/internal/servertest"
)

// RequireEnv is the environment variable that turns a missing redis-server
// into a test failure instead of a skip.
const RequireEnv = "REGIONCACHE_REQUIRE_REDIS"

// Server is a private redis-server process. Its methods are safe for
// concurrent use.
type Server struct {
	tb       testing.TB
	bin      string
	dir      string
	port     int
	extra    []string // more redis-server arguments
	sentinel string   // a sentinel's configuration file ("": a server)

	proc atomic.Pointer[servertest.Process] // nil while stopped
}

// Start starts a private redis-server for tb and registers its shutdown with
// tb.Cleanup. It skips tb when redis-server is missing (fails it when
// REGIONCACHE_REQUIRE_REDIS=1) and fails tb when the server does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return startWith(tb, tb.TempDir(), nil, 0)
}

// redisServer returns the path of redis-server, or skips (fails) tb.
func redisServer(tb testing.TB) string {
	tb.Helper()
	return servertest.Binary(tb, "redis-server", RequireEnv)
}

// startWith starts a server in dir with extra arguments, on port (0: a free
// one; for Cluster nodes, one whose bus port, port+10000, is free too).
func startWith(tb testing.TB, dir string, extra []string, port int) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: redisServer(tb), dir: dir, extra: extra}
	if err := s.launch(port); err != nil {
		tb.Fatalf("redistest: starting redis-server: %v", err)
	}
	return s
}

// launch starts s on port (0: a free one), trying a few times, and registers
// its Stop with the test's cleanup.
func (s *Server) launch(port int) error {
	err := servertest.OnPort(port, 5, func(p int) error { s.port = p; return s.start() })
	if err == nil {
		s.tb.Cleanup(s.Stop)
	}
	return err
}

// start launches the process on s.port and waits until it answers PING.
func (s *Server) start() error {
	var args []string
	if s.sentinel != "" {
		// A sentinel rewrites its configuration file; it needs its own.
		args = []string{s.sentinel, "--sentinel", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--daemonize", "no", "--protected-mode", "no", "--logfile", "", "--loglevel", "warning"}
	} else {
		args = []string{
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--dir", s.dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--protected-mode", "no",
			"--logfile", "",
			"--loglevel", "warning",
			"--databases", "16",
		}
	}
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	p, err := servertest.Start(fmt.Sprintf("redis-server on port %d", s.port), cmd, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	}, 10*time.Second)
	if err != nil {
		return err
	}
	s.proc.Store(p)
	return nil
}

// Addr returns the server's "127.0.0.1:port" address.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL returns a redis:// URL for database db of the server.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

// Client returns a new go-redis client for the server, closed when the test
// ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server and waits for it to exit. It is idempotent, and is
// called automatically when the test ends.
func (s *Server) Stop() { s.proc.Swap(nil).Stop() }

// Restart stops the server and starts a fresh one on the same port (with no
// data: persistence is off). down, if positive, is how long the server stays
// stopped in between. It fails the test if the server does not come back.
func (s *Server) Restart(down time.Duration) {
	s.tb.Helper()
	s.Stop()
	if down > 0 {
		time.Sleep(down)
	}
	// The port may linger briefly.
	if err := servertest.Retry(50, 100*time.Millisecond, s.start); err != nil {
		s.tb.Fatalf("redistest: restarting redis-server on port %d: %v", s.port, err)
	}
}

// CommandStats returns how many times each command has been called since the
// server started (or since ResetStats), from INFO commandstats: for example
// {"get": 12, "evalsha": 3}. Commands run from Lua scripts are counted too.
func (s *Server) CommandStats() (map[string]int64, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	txt, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return ParseCommandStats(txt)
}

// ResetStats zeroes the server's command statistics (CONFIG RESETSTAT).
func (s *Server) ResetStats() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	return c.ConfigResetStat(context.Background()).Err()
}

// ParseCommandStats parses the text of INFO commandstats into calls per
// command name (lower case; subcommands as "config|resetstat").
func ParseCommandStats(info string) (map[string]int64, error) {
	stats := make(map[string]int64)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		found := false
		for _, field := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			if k == "calls" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("redistest: bad calls in %q: %w", line, err)
				}
				stats[strings.TrimPrefix(name, "cmdstat_")] = n
				found = true
			}
		}
		if !found {
			return nil, errors.New("redistest: no calls= field in " + strconv.Quote(line))
		}
	}
	return stats, nil
}

// signal sends sig to the running server, failing the test if there is none.
func (s *Server) signal(sig os.Signal) {
	s.tb.Helper()
	p := s.proc.Load()
	if p == nil {
		s.tb.Fatalf("redistest: server on port %d is not running", s.port)
	}
	if err := p.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v to server on port %d: %v", sig, s.port, err)
	}
}

// Kill kills the server (SIGKILL) as a crash would. Unlike Stop it is meant
// to be called mid-test; Restart brings it back on the same port.
func (s *Server) Kill() { s.Stop() }

// Running reports whether the server process is running (started and not
// stopped or killed through the Server).
func (s *Server) Running() bool { return s.proc.Load() != nil }
