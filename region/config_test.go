package region_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/region"
)

func TestConfigureFromFileJSONOnly(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"c.yaml", "c.YML"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("cache:\n  backend: memory\n"), 0o600)
		err := region.New().ConfigureFromFile(p, "cache.")
		if !errors.Is(err, region.ErrBadOption) || !strings.Contains(err.Error(), "region/yamlconfig") {
			t.Errorf("%s: %v, want an error pointing at region/yamlconfig", name, err)
		}
	}
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("x = 1\n"), 0o600)
	if err := region.New().ConfigureFromFile(p, "cache."); !errors.Is(err, region.ErrBadOption) {
		t.Errorf("c.toml: %v", err)
	}
	p = filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"cache": {"backend": "memory", "codec": "json"}}`), 0o600)
	r := region.New()
	if err := r.ConfigureFromFile(p, "cache."); err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func TestLoadConfigFileJSONErrorLine(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, data, line string }{
		{"syntax.json", "{\n  \"cache\": {\n    \"backend\": \"memory\",,\n  }\n}\n", "line 3"},
		{"type.json", "{\n  \"a\": 1,\n  \"b\": [1]\n}\n[]", "line 5"},
		{"top.json", "\n\n[1, 2]\n", "line 3"},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, []byte(c.data), 0o600)
		_, err := region.LoadConfigFile(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.line) {
			t.Errorf("%s: %v, want an error naming the file and %s", c.name, err, c.line)
		}
	}
}
