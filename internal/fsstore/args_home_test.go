package fsstore

import (
	"path/filepath"
	"testing"

	"github.com/regioncache/regioncache/backends"
)

// A base_dir of "~/x" (typical in a YAML or JSON config) is the user's home
// directory's x, not a directory named "~".
func TestBaseDirTildeIsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := ParseArgs(backends.Args{"base_dir": "~/cache/users"}, KindValue)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, "cache", "users"); c.Dir != want {
		t.Fatalf("base_dir ~/cache/users = %q, want %q", c.Dir, want)
	}
}
