//go:build unix

package plugins

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// gone reports whether pid has exited (a zombie counts as exited: in a
// container nobody may reap an orphan).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitGone polls for pid to exit, up to limit.
func waitGone(pid int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if gone(pid) {
			return true
		}
	}
	return gone(pid)
}

// TestKillMidCall SIGKILLs the plugin while a call is blocked in it (a Lock
// waiting for a key another handle holds). The requirement is an
// error within a second that names the plugin, and a next call that works;
// the one-second bound is the specification, not a performance measurement.
func TestKillMidCall(t *testing.T) {
	ctx := context.Background()
	b := openT(t, "bolt", backends.Args{"base_dir": t.TempDir()})
	if err := b.Set(ctx, "before", backends.Entry{Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	l := backends.LockerOf(b)
	if l == nil {
		t.Fatal("the bolt plugin offers no lock")
	}
	h, err := l.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	// Another Backend of the same plugin process: the in-process keyed
	// mutex in front of b's lock would hold the waiter in this process.
	b2 := openT(t, "bolt", backends.Args{"base_dir": b.args["base_dir"]})
	l2 := backends.LockerOf(b2)
	go func() {
		_, err := l2.Lock(ctx, "k") // blocks in the plugin
		done <- result{err, time.Now()}
	}()
	select {
	case r := <-done:
		t.Fatalf("second Lock returned while the first was held: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	pid := b.pid()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked call did not return within 10s of the plugin's death")
	}
	if d := r.at.Sub(killed); d >= time.Second {
		t.Errorf("the blocked call failed %v after the kill; the requirement is under a second", d)
	}
	if !errors.Is(r.err, ErrPluginExited) || !strings.Contains(r.err.Error(), "plugin bolt") {
		t.Errorf("blocked call: %v, want ErrPluginExited naming plugin bolt", r.err)
	}
	if err := h.Unlock(); err == nil {
		t.Error("Unlock of a handle from the dead process succeeded")
	}
	// The next call restarts the plugin; the database is on disk.
	e, err := b.Get(ctx, "before")
	if err != nil || string(e.Payload) != "v" {
		t.Fatalf("Get after the crash: %v %q", err, e.Payload)
	}
	if n := b.starts(); n != 2 {
		t.Errorf("plugin started %d times, want 2", n)
	}
	if b.pid() == pid {
		t.Error("same pid after restart")
	}
	h2, err := l.Lock(ctx, "k")
	if err != nil {
		t.Fatalf("Lock after restart: %v", err)
	}
	h2.Unlock()
}

// TestCloseLeavesNoProcess: closing the last backend of a plugin stops its
// process; Cleanup stops every process.
func TestCloseLeavesNoProcess(t *testing.T) {
	a, err := Open(pluginPath("memory"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(pluginPath("memory"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := a.pid()
	if b.pid() != pid {
		t.Errorf("two backends of one executable run in processes %d and %d, want one", pid, b.pid())
	}
	a.Close()
	if gone(pid) {
		t.Fatal("closing one of two backends stopped the shared process")
	}
	if err := b.Set(context.Background(), "k", backends.Entry{Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("plugin %d still running after its last backend was closed", pid)
	}
	if _, err := b.Get(context.Background(), "k"); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}

	c, err := Open(pluginPath("memory"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid = c.pid()
	Cleanup()
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("plugin %d still running after Cleanup", pid)
	}
}

// TestPluginExitsWhenHostDies kills a host process (this test binary
// re-executed as a helper) with SIGKILL, so it cannot clean up, and checks
// that its plugin exits by itself.
func TestPluginExitsWhenHostDies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "REGIONCACHE_PLUGINS_TEST_PLUGIN="+pluginPath("memory"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		cmd.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	if gone(pid) {
		t.Fatal("plugin not running before the host was killed")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !waitGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("plugin %d still running 10s after its host was killed", pid)
	}
}

// TestKillMidMultiplexedCall SIGKILLs a plugin while small calls wait on its
// Calls stream (Gets the hostile plugin never answers, with no deadline):
// every one fails within a second with ErrPluginExited, and the next call
// starts the plugin again.
func TestKillMidMultiplexedCall(t *testing.T) {
	b := openT(t, "hostile", backends.Args{"behaviour": "silent"}, quiet, withOwnProcess())
	checkNextCall(t, b)
	const n = 8
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := b.Get(context.Background(), "bad")
			done <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	killed := time.Now()
	if err := syscall.Kill(b.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, ErrPluginExited) || !strings.Contains(err.Error(), "plugin hostile") {
				t.Errorf("call %d: %v, want ErrPluginExited naming the plugin", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call waiting on the killed plugin did not return within 10s")
		}
	}
	if d := time.Since(killed); d > time.Second+grace {
		t.Errorf("the calls failed %v after the kill; the requirement is under a second", d)
	}
	checkNextCall(t, b)
}

// TestCloseWhileCallsInFlight closes a Backend while calls wait on it with
// no deadline: Close returns, and so does every call, with an error.
func TestCloseWhileCallsInFlight(t *testing.T) {
	b, err := Open(pluginPath("hostile"), backends.Args{"behaviour": "silent"}, quiet, withOwnProcess())
	if err != nil {
		t.Fatal(err)
	}
	pid := b.pid()
	const n = 8
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = b.Get(context.Background(), "bad")
			} else {
				_, err = b.Get(context.Background(), "bad")
				if err == nil {
					err = b.Set(context.Background(), "x", backends.Entry{})
				}
			}
			done <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
	case <-time.After(40 * time.Second):
		t.Fatal("Close did not return while calls were in flight")
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("call %d succeeded on a closed Backend", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call in flight did not return after Close")
		}
	}
	if !waitGone(pid, 10*time.Second) {
		t.Errorf("plugin process %d still running after Close", pid)
	}
	if _, err := b.Get(context.Background(), "good"); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}
