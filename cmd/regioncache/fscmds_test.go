package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore"
)

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// fillCache makes a filesystem cache with a few entries of known sizes,
// ages and tags.
func fillCache(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := filesystem.Open(backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	now := time.Now()
	set := func(k string, size int, age time.Duration, tags ...string) {
		if err := b.Set(ctx, k, backends.Entry{Payload: make([]byte, size), Created: now.Add(-age), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	set("user:1", 1536, time.Minute, "users")
	set("user:2", 10, 2*time.Hour, "users", "old")
	set("report/2024", 3<<20, 50*time.Hour)
	set("bin\x00key", 5, time.Second)
	return dir
}

func TestInspect(t *testing.T) {
	dir := fillCache(t)
	code, out, errs := runCmd(t, "", "inspect", "-sort", "size", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"filesystem cache", "user:1", "1.5 KiB", "3.0 MiB", "users,old", `"bin\x00key"`, "2d02h", "total: 4 entries", "└──"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	// Sorted by size: the report comes first.
	if strings.Index(out, "report/2024") > strings.Index(out, "user:1") {
		t.Errorf("not sorted by size:\n%s", out)
	}
	code, out, _ = runCmd(t, "", "inspect", "-limit", "1", "-tree=false", dir)
	if code != 0 || !strings.Contains(out, "and 3 more") || strings.Contains(out, "└──") {
		t.Fatalf("-limit 1 -tree=false: exit %d\n%s", code, out)
	}
}

func TestInspectRawfs(t *testing.T) {
	dir := t.TempDir()
	b, err := rawfs.Open(backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	b.Set(context.Background(), "file", backends.Entry{Payload: make([]byte, 2048), Created: time.Now()})
	b.Close()
	code, out, errs := runCmd(t, "", "inspect", dir)
	if code != 0 || !strings.Contains(out, "rawfs cache") || !strings.Contains(out, "2.0 KiB") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
}

func TestInspectRefusesNonCacheDirs(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCmd(t, "", "inspect", dir)
	if code != 1 || !strings.Contains(errs, "not a regioncache") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "regioncache.lock")); err == nil {
		t.Fatal("inspect turned a plain directory into a cache")
	}
	if code, _, _ := runCmd(t, "", "inspect"); code != 2 {
		t.Fatalf("no directory: exit %d", code)
	}
	if code, _, _ := runCmd(t, "", "inspect", "-sort", "colour", dir); code != 2 {
		t.Fatalf("bad -sort: exit %d", code)
	}
}

func TestPrune(t *testing.T) {
	dir := fillCache(t)
	if code, _, _ := runCmd(t, "", "prune", dir); code != 2 {
		t.Fatalf("prune with nothing to do: exit %d", code)
	}
	if code, _, _ := runCmd(t, "", "prune", "-max-size", "lots", dir); code != 2 {
		t.Fatalf("bad -max-size: exit %d", code)
	}
	code, out, errs := runCmd(t, "", "prune", "-expired", "1h", dir)
	if code != 0 || !strings.Contains(out, "removed 2 expired") || !strings.Contains(out, "now: 2 entries") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = runCmd(t, "", "prune", "-max-size", "1KiB", "-progress", dir)
	if code != 0 || !strings.Contains(out, "1 evicted") || !strings.Contains(errs, "256/256") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
}

func TestEvictTag(t *testing.T) {
	dir := fillCache(t)
	if code, _, _ := runCmd(t, "", "evict", dir); code != 2 {
		t.Fatalf("evict without -tag: exit %d", code)
	}
	code, out, errs := runCmd(t, "", "evict", "-tag", "users", dir)
	if code != 0 || !strings.Contains(out, "removed 2 entries tagged users") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	_, out, _ = runCmd(t, "", "inspect", dir)
	if strings.Contains(out, "user:") || !strings.Contains(out, "total: 2 entries") {
		t.Fatalf("after evict:\n%s", out)
	}
}

func TestRm(t *testing.T) {
	dir := fillCache(t)
	// Answer no: kept.
	code, out, errs := runTTY(t, "n\n", "rm", dir, "user:1")
	if code != 0 || !strings.Contains(errs, "remove user:1 (1.5 KiB, created 1m") || !strings.Contains(out, "kept user:1") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	// Answer yes: removed.
	code, out, _ = runTTY(t, "y\n", "rm", dir, "user:1")
	if code != 0 || !strings.Contains(out, "removed user:1") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// -y does not ask; binary keys work; a missing key is an error.
	code, out, errs = runCmd(t, "", "rm", "-y", dir, "bin\x00key", "user:1")
	if code != 1 || !strings.Contains(out, `removed "bin\x00key"`) || !strings.Contains(errs, "no entry for user:1") || strings.Contains(errs, "[y/N]") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	_, out, _ = runCmd(t, "", "inspect", dir)
	if !strings.Contains(out, "total: 2 entries") {
		t.Fatalf("after rm:\n%s", out)
	}
	if code, _, _ := runCmd(t, "", "rm", dir); code != 2 {
		t.Fatalf("rm without a key: exit %d", code)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	_ = fmt.Sprint()
}

// A cache directory is hostile input (issue 10): the commands that read it
// never follow a link below it, never allocate what a file claims, and work
// around damage, reporting it, instead of refusing the whole directory.

func needSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
}

// unusedShard returns a shard name of dir that has no directory yet.
func unusedShard(t *testing.T, dir string) string {
	t.Helper()
	for i := range 256 {
		n := fmt.Sprintf("%02x", i)
		if _, err := os.Lstat(filepath.Join(dir, n)); os.IsNotExist(err) {
			return n
		}
	}
	t.Fatal("every shard is used")
	return ""
}

// Point 1: with base_dir/tmp a symlink, no command deletes (or touches) the
// old files of the directory it points to.
func TestCommandsNeverSweepThroughSymlinkedTmp(t *testing.T) {
	needSymlinks(t)
	dir := fillCache(t)
	sentinel := t.TempDir()
	old := filepath.Join(sentinel, "precious")
	os.WriteFile(old, []byte("keep"), 0o600)
	past := time.Now().Add(-72 * time.Hour)
	os.Chtimes(old, past, past)
	if err := os.Symlink(sentinel, filepath.Join(dir, fsstore.TempDir)); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"inspect", dir}, {"stats", dir}, {"prune", dir, "--max-size", "1GiB"}, {"evict", dir, "--tag", "nothing"}} {
		if code, out, errs := runCmd(t, "", args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "keep" {
		t.Fatalf("a file behind a symlinked tmp/ was touched: %q %v", b, err)
	}
}

// Point 2: a symlinked shard makes no command read the files it points to:
// neither the kind detection nor the listing sees them.
func TestCommandsNeverReadThroughSymlinkedShard(t *testing.T) {
	needSymlinks(t)
	dir := fillCache(t)
	// Outside the cache: a rawfs entry file, under a shard-like name.
	src := t.TempDir()
	rb, err := rawfs.Open(backends.Args{"base_dir": src})
	if err != nil {
		t.Fatal(err)
	}
	rb.Set(context.Background(), "outside-secret", backends.Entry{Payload: []byte("secret")})
	rb.Close()
	n := fsstore.Name("outside-secret")
	outside := t.TempDir()
	data, _ := os.ReadFile(filepath.Join(src, n[:2], n))
	os.WriteFile(filepath.Join(outside, strings.Repeat("0", 32)), data, 0o600)
	if err := os.Symlink(outside, filepath.Join(dir, "00")); err != nil {
		if _, err := os.Lstat(filepath.Join(dir, "00")); err == nil {
			t.Skip("shard 00 is in use")
		}
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "", "inspect", dir)
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "filesystem cache") || strings.Contains(out, "outside-secret") || !strings.Contains(out, "user:1") {
		t.Fatalf("inspect read through a symlinked shard:\n%s", out)
	}
}

// Point 3: an entry grown to a sparse terabyte, and a rawfs header claiming
// a terabyte payload, are damaged entries to the commands, not allocations.
func TestCommandsOnTerabyteClaims(t *testing.T) {
	dir := fillCache(t)
	n := fsstore.Name("user:1")
	if err := os.Truncate(filepath.Join(dir, n[:2], n), 1<<40); err != nil {
		t.Fatal(err)
	}
	rdir := t.TempDir()
	rb, err := rawfs.Open(backends.Args{"base_dir": rdir})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bad", "good"} {
		rb.Set(context.Background(), k, backends.Entry{Payload: []byte("v"), Tags: []string{"t"}})
	}
	rb.Close()
	n = fsstore.Name("bad")
	p := filepath.Join(rdir, n[:2], n)
	data, _ := os.ReadFile(p)
	binary.LittleEndian.PutUint64(data[32:], 1<<40)
	os.WriteFile(p, data, 0o600)
	for _, args := range [][]string{
		{"inspect", dir}, {"stats", dir}, {"rm", dir, "user:2", "-y"}, {"prune", dir, "--max-size", "1KiB"},
		{"inspect", rdir}, {"evict", rdir, "--tag", "t"},
	} {
		if code, out, errs := runCmd(t, "", args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
}

// Point 6: one damaged shard (a file where a shard directory belongs) does
// not make the commands refuse the directory: they report it on stderr and
// go on with the rest.
func TestCommandsReportDamagedShardAndGoOn(t *testing.T) {
	bin := cliBinary(t)
	dir := fillCache(t)
	bad := unusedShard(t, dir)
	os.WriteFile(filepath.Join(dir, bad), []byte("not a shard"), 0o600)
	for _, args := range [][]string{
		{"inspect", dir}, {"stats", dir}, {"evict", dir, "--tag", "old"}, {"rm", dir, "user:1", "-y"}, {"prune", dir, "--max-size", "1KiB"},
	} {
		var out, errb strings.Builder
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if _, exited := err.(*exec.ExitError); err != nil && !exited {
			t.Fatal(err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("%v with a damaged shard: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		if args[0] == "inspect" && (!strings.Contains(out.String(), "report/2024") || !strings.Contains(errb.String(), bad)) {
			t.Fatalf("inspect with a damaged shard %s: did not list the rest or report it\nstdout %s\nstderr %s", bad, out.String(), errb.String())
		}
	}
}

// The demo's expired round reports its slowest stale caller's latency (the
// bar is 1ms on files); the cold round, which serves nobody stale, does not.
func TestDemoPrintsSlowestStale(t *testing.T) {
	code, out, errs := runCmd(t, "", "demo", "-processes", "2", "-goroutines", "8", "-work", "50ms")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	cold, expired, ok := strings.Cut(out, "expired:")
	if !ok || strings.Contains(cold, "slowest stale:") || !strings.Contains(expired, "slowest stale: ") {
		t.Fatalf("want one \"slowest stale:\" line, in the expired round:\n%s", out)
	}
	for _, l := range strings.Split(expired, "\n") {
		if d, ok := strings.CutPrefix(l, "slowest stale: "); ok {
			if v, err := time.ParseDuration(d); err != nil || v <= 0 {
				t.Fatalf("slowest stale: %q is not a positive duration", d)
			}
			t.Logf("slowest stale: %s", d)
		}
	}
}
