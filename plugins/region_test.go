package plugins

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// TestRegionUsesPluginByName: a plugin on REGIONCACHE_PLUGIN_PATH is a
// backend name for region.Open; dogpile creation, the plugin's lock and
// file values all go through it.
func TestRegionUsesPluginByName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv(EnvPath, binDir)
	r, err := region.Open("bolt", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	creations := 0
	for i := 0; i < 3; i++ {
		v, err := region.GetOrCreate(ctx, r, "k", func(context.Context) (string, error) {
			creations++
			return "value", nil
		})
		if err != nil || v != "value" {
			t.Fatalf("GetOrCreate = %q, %v", v, err)
		}
	}
	if creations != 1 {
		t.Errorf("%d creations, want 1", creations)
	}
	content := strings.Repeat("file value ", 200000) // 2.2 MB: a blob in the plugin
	for i := 0; i < 2; i++ {
		f, err := region.GetOrCreateFile(ctx, r, "file", func(context.Context) (*os.File, error) {
			creations++
			f, err := os.CreateTemp(t.TempDir(), "src-*")
			if err != nil {
				return nil, err
			}
			if _, err := f.WriteString(content); err != nil {
				return nil, err
			}
			return f, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != content {
			t.Fatalf("file value: %d bytes, %v", len(b), err)
		}
	}
	if creations != 2 {
		t.Errorf("%d creations, want 2", creations)
	}
	if _, err := os.Stat(filepath.Join(dir, "cache.db")); err != nil {
		t.Errorf("the plugin did not store in base_dir: %v", err)
	}
}
