package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
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
