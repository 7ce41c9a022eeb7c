package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/backends/rawfs"
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
