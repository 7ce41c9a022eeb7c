// Package servertest runs the private server processes of regioncache's
// tests: the common part of internal/redistest (redis-server) and
// internal/memcachedtest (memcached). It finds the program in PATH (skipping
// the test, or failing it when the package's "require" variable is set, if
// it is missing), picks free loopback ports, starts the process so that it
// dies with the test binary, waits until it answers, and stops it.
package servertest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary returns the path of the program name, found in PATH. If it is
// missing, Binary skips tb, or fails it when the environment variable
// require is "1" (so that CI can never silently skip a server's tests).
func Binary(tb testing.TB, name, require string) string {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(require) == "1" {
			tb.Fatalf("%s not found in PATH and %s=1: %v", name, require, err)
		}
		tb.Skipf("%s not found in PATH (set %s=1 to make this a failure): %v", name, require, err)
	}
	return bin
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Retry calls f until it returns nil, at most attempts times, sleeping pause
// after each failure. It returns nil or f's last error.
func Retry(attempts int, pause time.Duration, f func() error) error {
	var err error
	for range attempts {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(pause)
	}
	return err
}

// OnPort calls start with port until it succeeds, at most attempts times;
// when port is 0, each attempt gets a port from [FreePort] (another process
// may take a free port before the server binds it). It returns nil or the
// last error.
func OnPort(port, attempts int, start func(port int) error) error {
	return Retry(attempts, 0, func() error {
		p := port
		if p == 0 {
			var err error
			if p, err = FreePort(); err != nil {
				return fmt.Errorf("finding a free port: %w", err)
			}
		}
		return start(p)
	})
}

// Process is a running server process.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
	stop sync.Once
}

// Start starts cmd and waits, for at most timeout, until ready (a probe of
// the server: a PING, a version command) returns nil. The process's stdout
// and stderr are kept (the first 8 KiB) for errors, and on Linux the kernel
// kills it if the test process dies without stopping it. If the process
// exits first, or the timeout passes (the process is then killed), Start
// returns an error naming what and quoting the process's output.
func Start(what string, cmd *exec.Cmd, ready func() error, timeout time.Duration) (*Process, error) {
	setDeathSignal(cmd)
	// A pipe of our own rather than an io.Writer: cmd.Wait then returns when
	// the server exits, not when every process that inherited its stdout
	// (a fork for a replica's sync) has closed it.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("exec %s: %w", cmd.Path, err)
	}
	// The first 8 KiB of output, for errors; the rest is drained.
	var text []byte
	copied := make(chan struct{})
	go func() {
		text, _ = io.ReadAll(io.LimitReader(r, 8192))
		close(copied)
		_, _ = io.Copy(io.Discard, r)
		_ = r.Close()
	}()
	// lastWords returns the output once the process has exited, unless a
	// child still holds its stdout.
	lastWords := func() string {
		select {
		case <-copied:
			return strings.TrimSpace(string(text))
		case <-time.After(time.Second):
			return "(unavailable: the output is still open)"
		}
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %s", what, lastWords())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s did not answer within %v: %v; output: %s", what, timeout, err, lastWords())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process and waits for it to exit. It may be called more
// than once, and on a nil *Process, where it does nothing.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	p.stop.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }
