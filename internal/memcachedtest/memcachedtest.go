// Package memcachedtest starts private memcached processes for regioncache's
// tests and benchmarks, so that no test depends on (or disturbs) a memcached
// that happens to be running on the machine.
//
// Start launches memcached on a free loopback port and stops it when the
// test ends. When memcached is not installed the test is skipped, unless the
// environment variable REGIONCACHE_REQUIRE_MEMCACHED is "1", in which case
// it fails: CI sets it so that a missing server never silently skips the
// memcached tests.
package memcachedtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/internal/servertest"
)

// RequireEnv is the environment variable that turns a missing memcached
// into a test failure instead of a skip.
const RequireEnv = "REGIONCACHE_REQUIRE_MEMCACHED"

// Server is a private memcached process. Its methods are safe for concurrent
// use.
type Server struct {
	tb   testing.TB
	bin  string
	port int

	proc atomic.Pointer[servertest.Process] // nil while stopped
}

// Start starts a private memcached (64 MiB, items up to 2 MiB) for tb and
// registers its shutdown with tb.Cleanup. It skips tb when memcached is
// missing (fails it when REGIONCACHE_REQUIRE_MEMCACHED=1) and fails tb when
// the server does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: servertest.Binary(tb, "memcached", RequireEnv)}
	if err := servertest.OnPort(0, 5, func(p int) error { s.port = p; return s.start() }); err != nil {
		tb.Fatalf("memcachedtest: starting memcached: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// start launches the process on s.port and waits until it answers
// "version".
func (s *Server) start() error {
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "0", "-m", "64", "-I", "2m", "-c", "1024"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	p, err := servertest.Start(fmt.Sprintf("memcached on port %d", s.port), exec.Command(s.bin, args...), s.version, 10*time.Second)
	if err != nil {
		return err
	}
	s.proc.Store(p)
	return nil
}

// version sends "version" and waits for the answer.
func (s *Server) version() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// Addr returns the server's "127.0.0.1:port" address.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop kills the server and waits for it to exit. It is idempotent and is
// called when the test ends.
func (s *Server) Stop() { s.proc.Swap(nil).Stop() }

// Restart stops the server and starts an empty one on the same port. It
// fails the test if the server does not come back.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := servertest.Retry(50, 100*time.Millisecond, s.start); err != nil {
		s.tb.Fatalf("memcachedtest: restarting memcached on port %d: %v", s.port, err)
	}
}

// Stats returns the server's general statistics ("stats"): for example
// {"cmd_get": "12", "cmd_set": "3"}.
func (s *Server) Stats() (map[string]string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	st := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return st, nil
		}
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "STAT" {
			st[f[1]] = f[2]
		}
	}
}
