package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/conformance/brokentest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func exeName(n string) string {
	if runtime.GOOS == "windows" {
		return n + ".exe"
	}
	return n
}

// pluginBins builds, once per test run, the example bolt plugin and the
// test plugin installed as regioncache-backend-broken (a memory backend that
// drops values over 1 MiB and ignores deletes), and returns their directory.
func pluginBins(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "regioncache-cli-plugins-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"regioncache-backend-bolt", "../../examples/plugins/boltbackend"},
			{"regioncache-backend-broken", "../../plugins/internal/testplugin"},
			{"backendplugin", "../../conformance/internal/backendplugin"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, exeName(b.out)), b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{b.pkg, string(out), err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

func runCLI(t *testing.T, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &o, stderr: &e}, argv)
	return code, o.String(), e.String()
}

// TestConformanceCommandBolt: the example third-party plugin passes the
// suite through the CLI, as its author would check it.
func TestConformanceCommandBolt(t *testing.T) {
	bin := filepath.Join(pluginBins(t), exeName("regioncache-backend-bolt"))
	code, out, errOut := runCLI(t, "conformance", bin, "--arg", "base_dir={dir}", "--arg", "inline_max=4096")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"roundtrip/large", "lock/exclusive", "files/copy", "bolt: ", " 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a check failed:\n%s", out)
	}
}

// TestConformanceCommandBroken: a deliberately broken backend served as a
// plugin makes the command fail, naming the failing checks.
func TestConformanceCommandBroken(t *testing.T) {
	bin := filepath.Join(pluginBins(t), exeName("regioncache-backend-broken"))
	code, out, errOut := runCLI(t, "conformance", bin)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, check := range []string{"roundtrip/large", "delete/present"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == check && f[1] == "FAIL" {
				found = true
			}
		}
		if !found {
			t.Errorf("table does not show %s as FAIL:\n%s", check, out)
		}
		if !strings.Contains(errOut, check) {
			t.Errorf("error output does not name %s: %s", check, errOut)
		}
	}
}

func TestConformanceCommandUsage(t *testing.T) {
	if code, _, _ := runCLI(t, "conformance"); code != 2 {
		t.Errorf("no binary: exit %d, want 2", code)
	}
	if code, _, errOut := runCLI(t, "conformance", "x", "--arg", "novalue"); code != 2 || !strings.Contains(errOut, "key=value") {
		t.Errorf("bad --arg: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "conformance", filepath.Join(t.TempDir(), "nope")); code != 1 || !strings.Contains(errOut, "nope") {
		t.Errorf("missing binary: exit %d, %s", code, errOut)
	}
}

func TestPluginCommands(t *testing.T) {
	bins := pluginBins(t)
	dir := t.TempDir()
	t.Setenv("REGIONCACHE_PLUGIN_PATH", dir)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	code, out, errOut := runCLI(t, "plugin", "install", "-dir", dir, filepath.Join(bins, exeName("regioncache-backend-bolt")))
	if code != 0 || !strings.Contains(out, `installed backend "bolt"`) {
		t.Fatalf("install: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "plugin", "list")
	if code != 0 || !strings.Contains(out, "bolt") || !strings.Contains(out, "sha256:") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "plugin", "verify")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("verify: exit %d\n%s", code, out)
	}
	f, err := os.OpenFile(filepath.Join(dir, exeName("regioncache-backend-bolt")), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	code, out, errOut = runCLI(t, "plugin", "verify")
	if code != 1 || !strings.Contains(out, "changed") || !strings.Contains(errOut, "bolt") {
		t.Errorf("verify after tampering: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, "plugin", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
}

// faultBin returns the test plugin installed as regioncache-backend-<name>
// in the build directory (a hard link, or a copy), so that it serves the
// backend or brokentest wrapper its name selects.
func faultBin(t *testing.T, name string) string {
	t.Helper()
	return linkBin(t, "regioncache-backend-broken", name)
}

// linkBin installs the built executable base as regioncache-backend-<name>.
func linkBin(t *testing.T, base, name string) string {
	t.Helper()
	dir := pluginBins(t)
	src := filepath.Join(dir, exeName(base))
	dst := filepath.Join(dir, exeName("regioncache-backend-"+name))
	linkMu.Lock()
	defer linkMu.Unlock()
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	if err := os.Link(src, dst); err != nil {
		data, rerr := os.ReadFile(src)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

var linkMu sync.Mutex

// tableStatus returns the status column of check's row in a printed report.
func tableStatus(out, check string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == check {
			return f[1]
		}
	}
	return ""
}

// maskedByTransport are faults that the plugin boundary makes harmless:
// the host (or the plugin's server side) enforces the rule itself, so the
// check passes through a plugin. Each is still caught in process
// (conformance.TestBrokenBackendsAreCaught).
var maskedByTransport = map[string]string{
	"ignores-close":               "the host refuses every call on a closed Backend without asking the plugin",
	"ignores-context":             "the host's call returns when its context ends; the plugin drops the lock if it gets it later",
	"truncates-files":             "the plugin hands its backend a fresh temporary file positioned at offset 0",
	"leaks-lock-on-ended-context": "the host's Lock with an ended context fails in the host (gRPC refuses the call) and never reaches the plugin",
	"writable-open-file":          "the host gives the caller its own copy of the streamed file, opened read-only",
	"unfenced-set":                "the host's SetFenced refuses a released handle itself, before asking the plugin",
	"recycles-payloads":           "the payloads cross the process boundary into fresh buffers of the host's, which Close does not touch",
}

// TestBrokenBackendsAreCaught runs every brokentest fault as a plugin
// through the conformance command: the check that catches it in process
// must FAIL in the printed table (exit 1), unless the transport makes the
// fault harmless (maskedByTransport), in which case it must not FAIL.
func TestBrokenBackendsAreCaught(t *testing.T) {
	for _, f := range brokentest.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			bin := faultBin(t, "fault-"+f.Name)
			argv := []string{"conformance", bin, "--arg", "dir={dir}", "--arg", "ttl={ttl}", "--only", f.Check,
				"--large", "4MiB", "--timeout", "1m"}
			if f.LockEndsWithContext {
				argv = append(argv, "--lock-ends-with-context")
			}
			code, out, errOut := runCLI(t, argv...)
			got := tableStatus(out, f.Check)
			if why, ok := maskedByTransport[f.Name]; ok {
				if got == "FAIL" {
					t.Errorf("%s is listed as masked by the transport (%s), but %s failed:\n%s", f.Name, why, f.Check, out)
				}
				t.Logf("%s: %s %s through a plugin (masked: %s)", f.Name, f.Check, got, why)
				return
			}
			if code != 1 || got != "FAIL" {
				t.Fatalf("fault %q (%s) through a plugin: %s is %q, exit %d, want FAIL and exit 1\n%s\n%s", f.Name, f.Description, f.Check, got, code, out, errOut)
			}
			if !strings.Contains(errOut, f.Check) {
				t.Errorf("error output does not name %s: %s", f.Check, errOut)
			}
		})
	}
}

// TestConformanceCommandByName: the command accepts the backend name of a
// plugin on REGIONCACHE_PLUGIN_PATH; here the null backend served by the
// test plugin, which must pass, declaring discards.
func TestConformanceCommandByName(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(pluginBins(t), exeName("backendplugin"))
	if err := os.Link(bin, filepath.Join(dir, exeName("regioncache-backend-null"))); err != nil {
		data, _ := os.ReadFile(bin)
		if err := os.WriteFile(filepath.Join(dir, exeName("regioncache-backend-null")), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("REGIONCACHE_PLUGIN_PATH", dir)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	code, out, errOut := runCLI(t, "conformance", "null", "--large", "4MiB")
	if code != 0 || !strings.Contains(out, "null: ") || !strings.Contains(out, " 0 failed") || !strings.Contains(out, "discards") {
		t.Fatalf("conformance null: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "conformance", "no-such-backend")
	if code != 1 || !strings.Contains(errOut, "null") || !strings.Contains(errOut, "no-such-backend") {
		t.Errorf("unknown name: exit %d, %s (want an error naming it and listing the plugins found)", code, errOut)
	}
}

// TestConformanceCommandStress: --stress repeats the race-hunting checks.
func TestConformanceCommandStress(t *testing.T) {
	bin := faultBin(t, "memory")
	code, out, errOut := runCLI(t, "conformance", bin, "--only", "concurrent/own-keys", "--stress", "1s", "-json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var rep conformance.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r, ok := rep.Lookup("concurrent/own-keys")
	if !ok || r.Status != conformance.Pass || r.Duration < time.Second {
		t.Errorf("concurrent/own-keys under --stress 1s: %+v, want a pass that took at least 1s", r)
	}
}
