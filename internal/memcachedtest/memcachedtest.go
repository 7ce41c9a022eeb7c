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
	"sync"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing memcached
// into a test failure instead of a skip.
const RequireEnv = "REGIONCACHE_REQUIRE_MEMCACHED"

// Server is a private memcached process.
type Server struct {
	tb   testing.TB
	bin  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a private memcached (64 MiB, items up to 2 MiB) for tb and
// registers its shutdown with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("memcached not found in PATH and %s=1: %v", RequireEnv, err)
		}
		tb.Skipf("memcached not found in PATH (set %s=1 to make this a failure): %v", RequireEnv, err)
	}
	s := &Server{tb: tb, bin: bin}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if last = s.start(); last == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("memcachedtest: starting memcached: %v", last)
	return nil
}

func (s *Server) start() error {
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "0", "-m", "64", "-I", "2m", "-c", "1024"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(s.bin, args...)
	setDeathSignal(cmd)
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	var outMu sync.Mutex
	var text strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			outMu.Lock()
			if text.Len() < 4096 {
				text.WriteString(sc.Text() + "\n")
			}
			outMu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.version(); err == nil {
			break
		}
		select {
		case <-done:
			outMu.Lock()
			defer outMu.Unlock()
			return fmt.Errorf("memcached on port %d exited: %s", s.port, strings.TrimSpace(text.String()))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("memcached on port %d did not answer within 10s", s.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
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
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart stops the server and starts an empty one on the same port.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("memcachedtest: restarting memcached on port %d: %v", s.port, err)
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
