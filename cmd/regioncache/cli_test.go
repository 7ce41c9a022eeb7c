package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// runTTY runs a command line as if stdin and stderr were a terminal that a
// person answers prompts on.
func runTTY(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, stdinTTY: true, stderrTTY: true}, args)
	return code, out.String(), errb.String()
}

// cliCase is one command of the table: how to call it with valid arguments
// (flags given after the arguments), and what that run must print.
type cliCase struct {
	name string
	// argv calls the command validly, every flag after the positional
	// arguments; "-json" is appended for the JSON column.
	argv func(t *testing.T) []string
	// want is printed (stdout) by the plain run.
	want string
	// code is the exit status of the plain run when it is not 0.
	code int
}

// TestCLITable: every command × {-h, bad flag, flag after argument, -json,
// no terminal}, with exit codes and output checked.
func TestCLITable(t *testing.T) {
	bins := pluginBins(t)
	bolt := filepath.Join(bins, exeName("regioncache-backend-bolt"))
	t.Setenv("REGIONCACHE_PLUGIN_PATH", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	cases := []cliCase{
		{name: "demo", argv: func(t *testing.T) []string {
			return []string{"demo", "-processes", "1", "-goroutines", "3", "-work", "5ms"}
		}, want: "creations: 1"},
		{name: "inspect", argv: func(t *testing.T) []string {
			return []string{"inspect", fillCache(t), "-sort", "key", "-limit", "2"}
		}, want: "and 2 more"},
		{name: "stats", argv: func(t *testing.T) []string { return []string{"stats", fillCache(t), "-progress"} }, want: "4 entries"},
		{name: "prune", argv: func(t *testing.T) []string {
			return []string{"prune", fillCache(t), "-expired", "1h", "-dry-run"}
		}, want: "would remove 2 expired"},
		{name: "evict", argv: func(t *testing.T) []string { return []string{"evict", fillCache(t), "-tag", "users"} }, want: "removed 2 entries tagged users"},
		{name: "rm", argv: func(t *testing.T) []string { return []string{"rm", fillCache(t), "user:1", "-y"} }, want: "removed user:1"},
		{name: "bench", argv: func(t *testing.T) []string {
			return []string{"bench", "--backend", "memory", "-n", "50", "-callers", "8", "-work", "5ms"}
		}, want: "1 creation(s)"},
		{name: "version", argv: func(t *testing.T) []string { return []string{"version"} }, want: "regioncache "},
		{name: "completion", argv: func(t *testing.T) []string { return []string{"completion", "bash"} }, want: "__start_regioncache"},
		{name: "plugin install", argv: func(t *testing.T) []string {
			return []string{"plugin", "install", bolt, "-dir", t.TempDir(), "-name", "bolty"}
		}, want: `installed backend "bolty"`},
		{name: "plugin list", argv: func(t *testing.T) []string { return []string{"plugin", "list"} }, want: "NAME"},
		{name: "plugin verify", argv: func(t *testing.T) []string { return []string{"plugin", "verify", "-dir", t.TempDir()} }, want: "STATUS"},
		{name: "conformance", argv: func(t *testing.T) []string {
			return []string{"conformance", bolt, "-arg", "base_dir={dir}", "-only", "open"}
		}, want: "1 passed, 0 failed"},
	}
	for _, c := range cases {
		words := strings.Fields(c.name)
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Run("h", func(t *testing.T) {
				for _, h := range []string{"-h", "--help"} {
					code, out, errs := runCmd(t, "", append(append([]string{}, words...), h)...)
					if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "regioncache "+c.name) || errs != "" {
						t.Errorf("%s %s: exit %d, stderr %q\n%s", c.name, h, code, errs, out)
					}
				}
				// help <cmd> prints the same help.
				code, out, _ := runCmd(t, "", append([]string{"help"}, words...)...)
				if code != 0 || !strings.Contains(out, "regioncache "+c.name) {
					t.Errorf("help %s: exit %d\n%s", c.name, code, out)
				}
			})
			t.Run("bad_flag", func(t *testing.T) {
				for _, bad := range []string{"-no-such-flag", "--no-such-flag"} {
					code, out, errs := runCmd(t, "", append(c.argv(t), bad)...)
					if code != 2 || !strings.Contains(errs, "unknown flag") || !strings.Contains(errs, "no-such-flag") || !strings.Contains(errs, "regioncache "+c.name) {
						t.Errorf("%s %s: exit %d (want 2), stderr %q, stdout %q", c.name, bad, code, errs, out)
					}
				}
			})
			t.Run("flag_after_argument", func(t *testing.T) {
				code, out, errs := runCmd(t, "", c.argv(t)...)
				if code != c.code || !strings.Contains(out, c.want) {
					t.Errorf("%q: exit %d (want %d), want %q in\n%s\nstderr: %s", c.argv(t), code, c.code, c.want, out, errs)
				}
			})
			t.Run("json", func(t *testing.T) {
				for _, j := range []string{"-json", "--json"} {
					code, out, errs := runCmd(t, "", append(c.argv(t), j)...)
					var v any
					if code != c.code || json.Unmarshal([]byte(out), &v) != nil || v == nil {
						t.Errorf("%s %s: exit %d, not one JSON value:\n%s\nstderr: %s", c.name, j, code, out, errs)
					}
				}
			})
			t.Run("no_terminal", func(t *testing.T) {
				// runCmd's env has no terminal on stdin or stderr: no prompt,
				// no progress line rewriting, the same result. --progress
				// (stats) forces plain progress lines.
				code, out, errs := runCmd(t, "", c.argv(t)...)
				if code != c.code || strings.Contains(errs, "[y/N]") || strings.Contains(errs, "\r") || strings.Contains(errs, "\x1b[") {
					t.Errorf("%s without a terminal: exit %d, stderr %q\n%s", c.name, code, errs, out)
				}
			})
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	dir := fillCache(t)
	for _, argv := range [][]string{
		{"frobnicate"},
		{"plugin"},
		{"plugin", "frobnicate"},
		{"inspect"},
		{"inspect", dir, "-sort", "colour"},
		{"inspect", dir, "-limit", "-1"},
		{"prune", dir},
		{"prune", dir, "-expired", "yesterday"},
		{"prune", dir, "-max-size", "lots"},
		{"evict", dir},
		{"rm", dir},
		{"version", "extra"},
		{"completion"},
		{"completion", "tcsh"},
		{"demo", "-processes", "0"},
		{"demo", "extra"},
		{"conformance"},
		{"inspect", "--backend", "nosuchbackend"},
		{"inspect", "--backend", "memory", "--arg", "novalue"},
		{"inspect", "--backend", "memory", "--config", "x.yaml"},
		{"inspect", dir, "--prefix", "cache."},
	} {
		code, _, errs := runCmd(t, "", argv...)
		if code != 2 || errs == "" {
			t.Errorf("%q: exit %d, want 2; stderr %q", argv, code, errs)
		}
	}
	// An unknown backend lists the known ones.
	_, _, errs := runCmd(t, "", "inspect", "--backend", "nosuchbackend")
	for _, want := range []string{"nosuchbackend", "filesystem", "memory", "redis"} {
		if !strings.Contains(errs, want) {
			t.Errorf("unknown backend error lacks %q: %s", want, errs)
		}
	}
}

// The region's invalidation records are hidden unless asked for, and keys
// are shown as the region's caller wrote them.
func TestInspectReservedAndUserKeys(t *testing.T) {
	dir := t.TempDir()
	r := openRegion(t, "filesystem", backends.Args{"base_dir": dir})
	setString(t, r, "plain", "v")
	setString(t, r, "\x00starts with NUL", "v")
	setString(t, r, `say "hi"`, "v")
	invalidate(t, r)
	r.Close()

	code, out, errs := runCmd(t, "", "inspect", dir, "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, x := range rep.Entries {
		got[x.UserKey] = true
		if x.Reserved {
			t.Errorf("reserved record listed without --reserved: %q", x.Key)
		}
	}
	for _, k := range []string{"plain", "\x00starts with NUL", `say "hi"`} {
		if !got[k] {
			t.Errorf("user key %q not listed as written; got %v", k, got)
		}
	}
	if len(rep.Entries) != 3 {
		t.Errorf("%d entries listed, want 3: %+v", len(rep.Entries), rep.Entries)
	}
	_, out, _ = runCmd(t, "", "inspect", dir)
	if !strings.Contains(out, `say "hi"`) {
		t.Errorf("a printable key is shown escaped:\n%s", out)
	}
	_, out, _ = runCmd(t, "", "inspect", dir, "--reserved")
	if !strings.Contains(out, "(reserved)") {
		t.Errorf("--reserved does not show the invalidation record:\n%s", out)
	}
	// Pruning everything keeps the invalidation record: dropping it would
	// make invalidated values valid again.
	code, out, errs = runCmd(t, "", "prune", dir, "-max-size", "0")
	if code != 0 || !strings.Contains(out, "3 evicted") || !strings.Contains(out, "now: 1 entry") {
		t.Fatalf("prune -max-size 0: exit %d %s\n%s", code, errs, out)
	}
}

func TestPruneDryRunDeletesNothing(t *testing.T) {
	dir := fillCache(t)
	before := snapshot(t, dir)
	code, out, errs := runCmd(t, "", "prune", dir, "-expired", "1h", "-max-size", "1KiB", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"would remove user:2", "would remove report/2024", "expired", "least recently used", "would remove 2 expired and 1 evicted entries", "now: 4 entries"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("--dry-run changed the directory:\nbefore %s\nafter  %s", before, after)
	}
	// The same prune for real removes what the dry run said.
	code, out, _ = runCmd(t, "", "prune", dir, "-expired", "1h", "-max-size", "1KiB")
	if code != 0 || !strings.Contains(out, "removed 2 expired and 1 evicted entries") || !strings.Contains(out, "now: 1 entry") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// Seconds and days are durations too; -max-size 0 empties.
	dir = fillCache(t)
	for _, argv := range [][]string{{"-expired", "172800"}, {"-expired", "2d"}, {"-expired", "1d12h"}} {
		code, out, errs := runCmd(t, "", append([]string{"prune", dir, "--dry-run", "-json"}, argv...)...)
		var rep pruneReport
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Expired != 1 || !rep.DryRun {
			t.Errorf("%q: exit %d %s\n%s", argv, code, errs, out)
		}
	}
	code, out, _ = runCmd(t, "", "prune", dir, "-max-size", "0")
	if code != 0 || !strings.Contains(out, "now: 0 entries") {
		t.Fatalf("-max-size 0: exit %d\n%s", code, out)
	}
}

func TestEvictAndRmDryRun(t *testing.T) {
	dir := fillCache(t)
	before := snapshot(t, dir)
	code, out, _ := runCmd(t, "", "evict", dir, "-tag", "users", "-dry-run")
	if code != 0 || !strings.Contains(out, "would remove user:1") || !strings.Contains(out, "would remove 2 entries tagged users") {
		t.Fatalf("evict --dry-run: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "", "rm", dir, "user:1", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove user:1") {
		t.Fatalf("rm --dry-run: exit %d\n%s", code, out)
	}
	if after := snapshot(t, dir); after != before {
		t.Fatal("a dry run changed the directory")
	}
}

// bench on a cache directory: hit, miss and stampede rows against the file
// floor, one creation, and its keys gone afterwards.
func TestBenchDirectory(t *testing.T) {
	dir := fillCache(t)
	before := snapshotKeys(t, dir)
	code, out, errs := runCmd(t, "", "bench", dir, "-n", "100", "-callers", "16", "-work", "20ms", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Backend != "filesystem" || !strings.Contains(rep.Floor, "os.ReadFile") || len(rep.Rows) != 2 ||
		rep.Stampede.Creations != 1 || rep.Stampede.Errors != 0 || rep.Stampede.Callers != 16 {
		t.Fatalf("report: %+v", rep)
	}
	for _, r := range rep.Rows {
		if r.N != 100 || r.P50us <= 0 || r.P99us < r.P50us || r.FloorP50 <= 0 || r.Ratio <= 0 || r.OpsPerSec <= 0 {
			t.Errorf("row %+v", r)
		}
	}
	if after := snapshotKeys(t, dir); after != before {
		t.Errorf("bench left keys behind:\nbefore %s\nafter %s", before, after)
	}
}

func snapshotKeys(t *testing.T, dir string) string {
	t.Helper()
	_, out, _ := runCmd(t, "", "inspect", dir, "-sort", "key", "--reserved")
	_, keys, _ := strings.Cut(out, "KEY")
	keys, _, _ = strings.Cut(keys, "total:")
	var ks []string
	for _, l := range strings.Split(keys, "\n") {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "├") && !strings.HasPrefix(f[0], "└") && !strings.HasPrefix(f[0], "/") {
			ks = append(ks, f[0])
		}
	}
	return strings.Join(ks, " ")
}

func TestProgressOnlyOnTerminal(t *testing.T) {
	dir := fillCache(t)
	_, _, errs := runCmd(t, "", "inspect", dir)
	if errs != "" {
		t.Errorf("progress without a terminal: %q", errs)
	}
	_, _, errs = runTTY(t, "", "inspect", dir)
	if !strings.Contains(errs, "\r") || !strings.Contains(errs, "256/256") {
		t.Errorf("no progress line on a terminal: %q", errs)
	}
	_, _, errs = runCmd(t, "", "evict", dir, "-tag", "nosuch", "-progress")
	if strings.Contains(errs, "\r") || !strings.Contains(errs, "256/256") {
		t.Errorf("forced progress to a pipe should be plain lines: %q", errs)
	}
}

func TestInterruptExits130(t *testing.T) {
	dir := fillCache(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, []string{"inspect", dir})
	if code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("exit %d, want 130: %s", code, errb.String())
	}
}

// Shell completion offers the backend names for --backend.
func TestCompleteBackendNames(t *testing.T) {
	code, out, _ := runCmd(t, "", "__complete", "inspect", "--backend", "")
	for _, want := range []string{"filesystem", "memory", "redis", ":4"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion of --backend lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

func TestNormalizeFlags(t *testing.T) {
	root := newRoot(&env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	for _, c := range []struct{ in, want string }{
		{"prune d -max-size 0 -json", "prune d --max-size 0 --json"},
		{"prune d -max-size=1G -dry-run", "prune d --max-size=1G --dry-run"},
		{"rm d -y -- -json", "rm d -y -- -json"},
		{"evict d -tag -json", "evict d --tag -json"}, // a flag's value stays as it is
		{"inspect d -h", "inspect d -h"},
		{"inspect d -nosuch", "inspect d --nosuch"}, // for the parser to reject by its name
		{"rm d -yy", "rm d -yy"},                    // a shorthand cluster
	} {
		if got := strings.Join(normalizeFlags(root, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("normalizeFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"48h": 48 * time.Hour, "2d": 48 * time.Hour, "1d12h": 36 * time.Hour, "3600": time.Hour,
		"1.5d": 36 * time.Hour, "90m": 90 * time.Minute, "0.5": 500 * time.Millisecond,
	} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-5", "2x", "d", "yesterday", "-1d", "1e300"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q): no error", bad)
		}
	}
}

func TestUnsupportedBackendSaysWhatItLacks(t *testing.T) {
	tf := &targetFlags{backend: "null"}
	tg, _, err := tf.open(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	err = tg.list(context.Background(), func(entry) error { return nil }, nil)
	if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "Lister") {
		t.Fatalf("list on null: %v", err)
	}
	_, err = tg.evictTag(context.Background(), "x", nil)
	if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "TagEvicter") {
		t.Fatalf("evict on null: %v", err)
	}
	code, _, errs := runCmd(t, "", "inspect", "--backend", "null")
	if code != 1 || !strings.Contains(errs, "cannot list its entries") {
		t.Fatalf("inspect --backend null: exit %d %s", code, errs)
	}
}

// snapshot lists a directory's files with sizes and modification times.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// Entries and their data files; the store's own bookkeeping at the
		// top (regioncache.size, the lock files) may be rewritten by any
		// open.
		if !d.IsDir() && !(filepath.Dir(p) == dir && strings.HasPrefix(d.Name(), "regioncache.")) {
			fmt.Fprintf(&b, "%s %v %d\n", p, fi.ModTime(), fi.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// cliBinary builds the regioncache command once per test run.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "regioncache-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, exeName("regioncache"))
		out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput()
		if err != nil {
			cliErr = &buildError{".", string(out), err}
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliBin
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
