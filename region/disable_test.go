package region

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	_ "github.com/regioncache/regioncache/backends/rawfs"
)

func TestDisabledInMatcher(t *testing.T) {
	cases := []struct {
		v, region, ns string
		want          bool
	}{
		{"", "users", "", false},
		{"0", "users", "", false},
		{"false", "users", "", false},
		{" OFF ", "users", "", false},
		{"no", "users", "ns", false},
		{"1", "users", "", true},
		{"TRUE", "anything", "", true},
		{"all", "x", "ns", true},
		{"*", "x", "", true},
		{"yes", "x", "", true},
		{"users", "users", "", true},
		{"users", "users", "profile", true}, // a disabled region disables its namespaces
		{"users", "sessions", "", false},
		{"users,sessions", "sessions", "", true},
		{"users sessions", "sessions", "", true},
		{" users ,\tsessions\n", "sessions", "", true},
		{"users/profile", "users", "", false}, // a namespace entry does not disable the region
		{"users/profile", "users", "profile", true},
		{"users/profile", "users", "orders", false},
		{"users/profile", "sessions", "profile", false},
		{"*/profile", "sessions", "profile", true},
		{"*/profile", "sessions", "", false},
		{"Users", "users", "", false}, // exact match
		{"user", "users", "", false},
	}
	for _, c := range cases {
		got, why := disabledIn(c.v, c.region, c.ns)
		if got != c.want {
			t.Errorf("disabledIn(%q, %q, %q) = %v (%q), want %v", c.v, c.region, c.ns, got, why, c.want)
		}
		if got && !strings.Contains(why, DisableEnv) {
			t.Errorf("disabledIn(%q, %q, %q): reason %q does not name %s", c.v, c.region, c.ns, why, DisableEnv)
		}
	}
}

func TestDisabledByEnvReadsTheVariable(t *testing.T) {
	t.Setenv(DisableEnv, "users, orders/lines")
	if off, why := disabledByEnv("users"); !off || why != `REGIONCACHE_DISABLED lists "users"` {
		t.Fatalf("disabledByEnv(users) = %v, %q", off, why)
	}
	if off, _ := disabledByEnv("orders"); off {
		t.Fatal("disabledByEnv(orders) = true; only its namespace lines is listed")
	}
	if off, _ := disabledNamespaceByEnv("orders", "lines"); !off {
		t.Fatal("disabledNamespaceByEnv(orders, lines) = false")
	}
	t.Setenv(DisableEnv, "")
	if off, _ := disabledByEnv("users"); off {
		t.Fatal("disabledByEnv with the variable empty = true")
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openDisabled configures a region as Configure does with the variable
// set: through openOrPassThrough.
func openDisabled(t *testing.T, backend string, args backends.Args, opts ...Option) (*Region, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	r := New()
	cfg, err := r.config(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openOrPassThrough(&cfg, backend, args)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ConfigureBackend(b, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, &logs
}

func TestDisabledRegionRunsTheCreatorEveryTime(t *testing.T) {
	t.Setenv(DisableEnv, "users")
	ctx := context.Background()
	r, logs := openDisabled(t, "memory", nil, WithName("users"))
	if n := strings.Count(logs.String(), "region disabled"); n != 1 {
		t.Fatalf("want the region's disabling logged once at configure, got %d lines:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `REGIONCACHE_DISABLED lists \"users\"`) {
		t.Fatalf("log does not say why:\n%s", logs)
	}
	calls := 0
	for i := range 5 {
		v, err := GetOrCreate(ctx, r, "k", func(context.Context) (int, error) { calls++; return i, nil })
		if err != nil || v != i {
			t.Fatalf("call %d: %v, %v", i, v, err)
		}
	}
	if calls != 5 {
		t.Fatalf("creator ran %d times for 5 calls on a disabled region, want 5", calls)
	}
	if _, err := Get[int](ctx, r, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on a disabled region: %v, want ErrNotFound", err)
	}
	if n := strings.Count(logs.String(), "region disabled"); n != 1 {
		t.Fatalf("calls logged the disabling again: %d lines", n)
	}

	// A region with another name is not disabled.
	other, logs2 := openDisabled(t, "memory", nil, WithName("sessions"))
	calls = 0
	for range 3 {
		if _, err := GetOrCreate(ctx, other, "k", func(context.Context) (int, error) { calls++; return 1, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || logs2.String() != "" {
		t.Fatalf("region sessions: creator ran %d times (want 1), logs %q", calls, logs2)
	}
}

func TestDisabledRegionNeedsNoBackend(t *testing.T) {
	t.Setenv(DisableEnv, "1")
	// A rawfs region whose base_dir cannot exist: disabled, it is not opened.
	r, _ := openDisabled(t, "rawfs", backends.Args{"base_dir": "/dev/null/nope"})
	v, err := GetOrCreate(context.Background(), r, "k", func(context.Context) (string, error) { return "v", nil })
	if err != nil || v != "v" {
		t.Fatalf("%q, %v", v, err)
	}
}

func TestDisabledRegionHandsBackTheCreatorsFile(t *testing.T) {
	t.Setenv(DisableEnv, "*")
	ctx := context.Background()
	r, _ := openDisabled(t, "rawfs", backends.Args{"base_dir": t.TempDir()})
	dir := t.TempDir()
	calls := 0
	for i := range 3 {
		f, err := GetOrCreateFile(ctx, r, "f", func(context.Context) (*os.File, error) {
			calls++
			tmp, err := os.CreateTemp(dir, "v-*")
			if err != nil {
				return nil, err
			}
			_, err = tmp.WriteString("value")
			return tmp, err
		}, MoveFile())
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "value" {
			t.Fatalf("call %d read %q, %v", i, b, err)
		}
	}
	if calls != 3 {
		t.Fatalf("creator ran %d times for 3 calls, want 3", calls)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 && runtime.GOOS != "windows" {
		t.Fatalf("moved creator files left behind: %v", left)
	}
}
