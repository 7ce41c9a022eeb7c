package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/redistest"
	"github.com/regioncache/regioncache/plugins"
	"github.com/regioncache/regioncache/region"
)

func openRegion(t *testing.T, name string, args backends.Args) *region.Region {
	t.Helper()
	r, err := region.Open(name, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func setString(t *testing.T, r *region.Region, key, v string, opts ...region.CallOption) {
	t.Helper()
	if err := region.Set(context.Background(), r, key, v, opts...); err != nil {
		t.Fatal(err)
	}
}

func invalidate(t *testing.T, r *region.Region) {
	t.Helper()
	if err := r.Invalidate(context.Background(), region.Soft); err != nil {
		t.Fatal(err)
	}
}

// listed runs inspect -json with argv and returns the user keys it lists.
func listed(t *testing.T, argv ...string) []string {
	t.Helper()
	code, out, errs := runCmd(t, "", append(append([]string{"inspect"}, argv...), "-json")...)
	if code != 0 {
		t.Fatalf("inspect %q: exit %d: %s", argv, code, errs)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var keys []string
	for _, x := range rep.Entries {
		keys = append(keys, x.UserKey)
	}
	slices.Sort(keys)
	return keys
}

// The reading commands on a private redis-server, given by name and
// arguments: entries a region wrote are listed, sized, evicted by tag,
// pruned and removed.
func TestBackendCommandsRedis(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL(0)
	r := openRegion(t, "redis", backends.Args{"url": url})
	setString(t, r, "user:1", "alice", region.WithTags("users"))
	setString(t, r, "user:2", "bob", region.WithTags("users"))
	setString(t, r, "report/2024", strings.Repeat("x", 5000))
	setString(t, r, "\x00nul", "v")
	invalidate(t, r)

	be := []string{"--backend", "redis", "--arg", "url=" + url}
	want := []string{"\x00nul", "report/2024", "user:1", "user:2"}
	if got := listed(t, be...); !slices.Equal(got, want) {
		t.Fatalf("inspect --backend redis lists %q, want %q", got, want)
	}
	code, out, errs := runCmd(t, "", append([]string{"inspect"}, be...)...)
	if code != 0 || !strings.Contains(out, "redis backend") || !strings.Contains(out, "user:1") || !strings.Contains(out, "total: 4 entries") {
		t.Fatalf("inspect: exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = runCmd(t, "", append([]string{"stats", "-json"}, be...)...)
	var st statsReport
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Entries != 5 { // 4 and the invalidation record
		t.Fatalf("stats: exit %d %s\n%s", code, errs, out)
	}
	code, out, _ = runCmd(t, "", append([]string{"prune", "-max-size", "100", "--dry-run"}, be...)...)
	if code != 0 || !strings.Contains(out, "would remove report/2024") {
		t.Fatalf("prune --dry-run: exit %d\n%s", code, out)
	}
	if got := listed(t, be...); len(got) != 4 {
		t.Fatalf("dry run removed entries: %q", got)
	}
	code, out, errs = runCmd(t, "", append([]string{"evict", "-tag", "users"}, be...)...)
	if code != 0 || !strings.Contains(out, "removed 2 entries tagged users") {
		t.Fatalf("evict: exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = runCmd(t, "", append([]string{"rm", "-y", "\x00nul"}, be...)...)
	if code != 0 || !strings.Contains(out, `removed "\x00nul"`) {
		t.Fatalf("rm: exit %d %s\n%s", code, errs, out)
	}
	if got := listed(t, be...); !slices.Equal(got, []string{"report/2024"}) {
		t.Fatalf("after evict and rm: %q", got)
	}
	// The invalidation record survived everything above.
	code, out, _ = runCmd(t, "", append([]string{"inspect", "--reserved"}, be...)...)
	if code != 0 || !strings.Contains(out, "(reserved)") {
		t.Fatalf("invalidation record gone:\n%s", out)
	}
	// bench measures redis against a bare go-redis GET in the same loop.
	code, out, errs = runCmd(t, "", append([]string{"bench", "-n", "50", "-callers", "8", "-work", "10ms", "-json"}, be...)...)
	var br benchReport
	if code != 0 || json.Unmarshal([]byte(out), &br) != nil || !strings.Contains(br.Floor, "go-redis GET") || br.Stampede.Creations != 1 {
		t.Fatalf("bench: exit %d %s\n%s", code, errs, out)
	}
	// The same through a config file and prefix.
	cfg := filepath.Join(t.TempDir(), "cache.yaml")
	writeFile(t, cfg, "cache:\n  users:\n    backend: redis\n    arguments:\n      url: "+url+"\n")
	if got := listed(t, "--config", cfg, "--prefix", "cache.users."); !slices.Equal(got, []string{"report/2024"}) {
		t.Fatalf("inspect --config: %q", got)
	}
	code, _, errs = runCmd(t, "", "inspect", "--config", cfg, "--prefix", "cache.nope.")
	if code != 2 || !strings.Contains(errs, `"cache.users."`) {
		t.Fatalf("wrong prefix: exit %d %s", code, errs)
	}
}

// inspect --backend bolt through the example third-party plugin, found on
// REGIONCACHE_PLUGIN_PATH, lists what a region over the same plugin wrote.
func TestBackendCommandsBoltPlugin(t *testing.T) {
	bins := pluginBins(t)
	t.Setenv(plugins.EnvPath, bins)
	dir := t.TempDir()
	args := backends.Args{"base_dir": dir}
	r, err := region.Open("bolt", args)
	if err != nil {
		t.Fatal(err)
	}
	setString(t, r, "user:1", "alice", region.WithTags("users"))
	setString(t, r, "big", strings.Repeat("y", 100000))
	setString(t, r, "report/2024", "r")
	invalidate(t, r)
	if err := r.Close(); err != nil { // the database is one process's at a time
		t.Fatal(err)
	}
	be := []string{"--backend", "bolt", "--arg", "base_dir=" + dir}
	if got, want := listed(t, be...), []string{"big", "report/2024", "user:1"}; !slices.Equal(got, want) {
		t.Fatalf("inspect --backend bolt lists %q, want %q", got, want)
	}
	code, out, errs := runCmd(t, "", append([]string{"stats"}, be...)...)
	if code != 0 || !strings.Contains(out, "bolt backend: 4 entries") {
		t.Fatalf("stats: exit %d %s\n%s", code, errs, out)
	}
	code, out, errs = runCmd(t, "", append([]string{"evict", "-tag", "users"}, be...)...)
	if code != 0 || !strings.Contains(out, "removed 1 entry tagged users") {
		t.Fatalf("evict: exit %d %s\n%s", code, errs, out)
	}
	// A plugin given by its path works the same.
	bin := filepath.Join(bins, exeName("regioncache-backend-bolt"))
	if got, want := listed(t, "--backend", bin, "--arg", "base_dir="+dir), []string{"big", "report/2024"}; !slices.Equal(got, want) {
		t.Fatalf("inspect --backend <path> lists %q, want %q", got, want)
	}
}
