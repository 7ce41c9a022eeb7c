//go:build unix

package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitCode runs cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// The real binary with stdin from /dev/null (a character device, not a
// terminal): rm without -y refuses and deletes nothing.
func TestRmDevNullRefuses(t *testing.T) {
	bin := cliBinary(t)
	dir := fillCache(t)
	before := snapshot(t, dir)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	var out, errb strings.Builder
	cmd := exec.Command(bin, "rm", dir, "user:1", "user:2")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, &out, &errb
	if code := exitCode(t, cmd); code == 0 || !strings.Contains(errb.String(), "-y") || strings.Contains(errb.String(), "[y/N]") {
		t.Fatalf("rm </dev/null: exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	if snapshot(t, dir) != before {
		t.Fatal("rm </dev/null deleted something")
	}
	// With -y it removes.
	cmd = exec.Command(bin, "rm", dir, "user:1", "-y")
	cmd.Stdin = devnull
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("rm -y: exit %d", code)
	}
	// Progress is not written to a file that is not a terminal.
	errFile, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "inspect", dir)
	cmd.Stderr = errFile
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("inspect: exit %d", code)
	}
	errFile.Close()
	if b, _ := os.ReadFile(errFile.Name()); len(b) != 0 {
		t.Fatalf("inspect wrote to a non-terminal stderr: %q", b)
	}
}

// Ctrl-C (SIGINT) makes the real binary exit with status 130, and takes
// its demo worker processes with it.
func TestInterruptRealProcess(t *testing.T) {
	bin := cliBinary(t)
	cmd := exec.Command(bin, "demo", "-processes", "2", "-goroutines", "2", "-work", "1m")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "stampede:") {
		t.Fatalf("first line %q: %v", line, err)
	}
	time.Sleep(200 * time.Millisecond) // the creator is now running
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no exit 20s after SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130; stderr %s", code, errb.String())
	}
	t.Logf("exited %v after SIGINT", time.Since(start))
}

// The built binary reports its module version and the VCS revision it was
// built from (a pseudo-version in a git checkout). It is built as "go
// install" builds it, with VCS stamping on (whatever GOFLAGS says).
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), exeName("regioncache"))
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^regioncache (v\S+|\(devel\)) \(github.com/regioncache/regioncache\)$`).Match(out) || !strings.Contains(string(out), "built with go") {
		t.Fatalf("version output:\n%s", out)
	}
	if _, err := exec.LookPath("git"); err == nil && exec.Command("git", "rev-parse", "HEAD").Run() == nil {
		if !regexp.MustCompile(`(?m)^regioncache v\S+ `).Match(out) || !regexp.MustCompile(`(?m)^revision [0-9a-f]{40} `).Match(out) {
			t.Fatalf("built in a git checkout, the version should carry a module version and a revision:\n%s", out)
		}
	}
}
