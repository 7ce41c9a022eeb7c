package servertest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// recordTB records how Binary ends a test instead of ending it.
type recordTB struct {
	testing.TB
	calls []string
}

func (r *recordTB) Helper()                    {}
func (r *recordTB) Fatalf(string, ...any)      { r.calls = append(r.calls, "fail") }
func (r *recordTB) Skipf(string, ...any)       { r.calls = append(r.calls, "skip") }
func (r *recordTB) first() string              { return strings.Join(r.calls[:min(1, len(r.calls))], "") }
func missing(tb testing.TB, req string) string { return Binary(tb, "regioncache-no-such-server", req) }

func TestBinaryMissingSkipsUnlessRequired(t *testing.T) {
	const req = "REGIONCACHE_SERVERTEST_REQUIRE"
	t.Setenv(req, "")
	var tb recordTB
	missing(&tb, req)
	if tb.first() != "skip" {
		t.Fatalf("without %s: %v, want a skip", req, tb.calls)
	}
	t.Setenv(req, "1")
	tb = recordTB{}
	missing(&tb, req)
	if tb.first() != "fail" {
		t.Fatalf("with %s=1: %v, want a failure", req, tb.calls)
	}
	if bin := Binary(t, "sh", req); bin == "" {
		t.Fatal("sh not found")
	}
}

func TestStartReadyStop(t *testing.T) {
	tries := 0
	p, err := Start("sleeper", exec.Command("sleep", "30"), func() error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Stop(); p.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	var none *Process
	none.Stop()
}

func TestStartReportsExitWithOutput(t *testing.T) {
	_, err := Start("quitter", exec.Command("sh", "-c", "echo bad config >&2; exit 3"), func() error { return errors.New("no") }, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "quitter exited") || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("err = %v, want the exit with the server's output", err)
	}
}

func TestStartTimesOut(t *testing.T) {
	_, err := Start("mute", exec.Command("sleep", "30"), func() error { return errors.New("no answer") }, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "mute did not answer within 100ms: no answer") {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestOnPort(t *testing.T) {
	var ports []int
	err := OnPort(0, 5, func(p int) error {
		ports = append(ports, p)
		if len(ports) < 3 {
			return errors.New("taken")
		}
		return nil
	})
	if err != nil || len(ports) != 3 || ports[0] == 0 {
		t.Fatalf("OnPort(0): %v, ports %v", err, ports)
	}
	ports = nil
	err = OnPort(4242, 2, func(p int) error { ports = append(ports, p); return errors.New("taken") })
	if err == nil || len(ports) != 2 || ports[0] != 4242 || ports[1] != 4242 {
		t.Fatalf("OnPort(4242): %v, ports %v", err, ports)
	}
}
