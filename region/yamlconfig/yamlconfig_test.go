package yamlconfig_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/yamlconfig"
)

type point struct {
	X, Y int
	Name string
}

func write(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigureFromFile(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"c.yaml", "c.yml"} {
		p := write(t, name, "cache:\n  users:\n    backend: memory\n    codec: json\n    expiration_time: 1m\n    arguments:\n      copy_values: true\n  other:\n    backend: null\n")
		r := region.New()
		if err := yamlconfig.ConfigureFromFile(r, p, "cache.users."); err != nil {
			t.Fatal(err)
		}
		region.Set(ctx, r, "p", point{X: 3})
		if e, _ := r.Backend().Get(ctx, "p"); !strings.Contains(string(e.Payload), `"X":3`) {
			t.Fatalf("codec from YAML not applied: %s", e.Payload)
		}
		r.Close()
	}
	// JSON goes through region's loader.
	p := write(t, "c.json", `{"cache":{"users":{"backend":"memory","arguments":{"max_entries":"x"}}}}`)
	if err := yamlconfig.ConfigureFromFile(region.New(), p, "cache.users."); !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad JSON argument: %v", err)
	}
	p = write(t, "c.toml", "")
	if _, err := yamlconfig.Load(p); !errors.Is(err, region.ErrBadOption) {
		t.Fatalf("c.toml: %v", err)
	}
}

func TestLoadFlattens(t *testing.T) {
	p := write(t, "c.yaml", "a:\n  b:\n    c: 1\n    d: [x, y]\n  1: one\ne: true\n")
	m, err := yamlconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["a.b.c"] != 1 || m["a.1"] != "one" || m["e"] != true {
		t.Fatalf("flattened to %#v", m)
	}
	if d, ok := m["a.b.d"].([]any); !ok || len(d) != 2 {
		t.Fatalf("a.b.d = %#v", m["a.b.d"])
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ name, data, want string }{
		{"syntax.yaml", "cache:\n  users:\n    backend: memory\n    bad: a: b\n", "line 4"},
		{"open.yaml", "cache:\n  users:\n    backend: memory\n    bad: [\n", "line 4"},
		{"tabs.yaml", "cache:\n  users:\n\tbackend: memory\n", "line 3"},
		{"seq.yaml", "# a list, not a mapping\n- backend: memory\n", "line 2"},
		{"dup.yaml", "cache:\n  backend: memory\n  backend: null\n", "line 3"},
	} {
		p := write(t, c.name, c.data)
		_, err := yamlconfig.Load(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming the file and %s", c.name, err, c.want)
		}
	}
	p := write(t, "unknown.yaml", "cache:\n  backend: memory\n  expiry: 3\n")
	err := yamlconfig.ConfigureFromFile(region.New(), p, "cache.")
	if !errors.Is(err, region.ErrBadOption) || !strings.Contains(err.Error(), "cache.expiry") || !strings.Contains(err.Error(), p) {
		t.Errorf("unknown key: %v", err)
	}
}
