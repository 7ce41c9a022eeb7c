package conformance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// hostileKeys are keys that break naive key-to-file-name or key-to-identifier
// mappings. Each must be stored apart from every other.
func hostileKeys() []string {
	long := strings.Repeat("k", 10<<10)
	keys := []string{
		"", " ", "a", "A", "a ", "a.", "key", "Key", "KEY", "kEy",
		"é", "e\u0301", "ß", "SS", "ss", "日本語のキー", "🔑", "\ufeffbom",
		".", "..", "...", "/", "//", "\\", "../x", "../../x", "../../../x",
		"../sibling/stray", "../../scratch/stray", "a/b", "a/../b", "a/./b", "a\\b", "..\\x", "..\\..\\x",
		"C:\\x", "C:x", "/abs/olute", "~", "~/x", "$HOME", "%TEMP%",
		"CON", "con", "NUL", "nul.txt", "COM1", "LPT1", "aux",
		"\x00", "a\x00", "a\x00b", "\x00a", "\t", "\n", "\r\n", "\x1b[31m", "\x7f", "\x01\x02\x03",
		"\xff", "\xfe\xff", "\xc0\x80", "\xed\xa0\x80",
		"*", "?", "[a-z]", "a:b", "a|b", "\"q\"", "<>", "key with spaces", "%2e%2e%2f", "..%2f",
		long, long[:len(long)-1] + "K", long + "x", strings.Repeat("/..", 3000), strings.Repeat("é", 5000),
	}
	for i := 0; i < 8; i++ {
		keys = append(keys, strings.Repeat("x", 255+i-4)) // around NAME_MAX
	}
	return keys
}

func checkHostileKeys(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	keys := hostileKeys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			return fmt.Errorf("internal error: duplicate hostile key %s", qkey(k))
		}
		seen[k] = true
	}
	for i, k := range keys {
		if err := set(ctx, b, k, newEntry([]byte(fmt.Sprintf("value of key %d", i)), i)); err != nil {
			return err
		}
	}
	check := func(deleted func(int) bool) error {
		for i, k := range keys {
			if deleted(i) {
				if err := expectMiss(ctx, b, k, "it was deleted"); err != nil {
					return err
				}
				continue
			}
			got, err := b.Get(ctx, k)
			if e.discards() {
				if !errors.Is(err, backends.ErrNotFound) {
					return fmt.Errorf("Get(%s) = %v, want a miss from a backend that declares discards", qkey(k), err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("Get(%s): %w", qkey(k), err)
			}
			if want := fmt.Sprintf("value of key %d", i); string(got.Payload) != want || got.Version != i {
				return fmt.Errorf("keys collide: Get(%s) returned %q (version %d), want %q: another key's entry overwrote it",
					qkey(k), truncate(got.Payload), got.Version, want)
			}
		}
		return nil
	}
	if err := check(func(int) bool { return false }); err != nil {
		return err
	}
	// Deleting every other key must leave the rest alone.
	for i, k := range keys {
		if i%2 == 0 {
			if err := del(ctx, b, k); err != nil {
				return err
			}
		}
	}
	if err := check(func(i int) bool { return i%2 == 0 }); err != nil {
		return fmt.Errorf("after deleting every other key: %w", err)
	}
	return e.noStrays()
}

func truncate(p []byte) string {
	if len(p) > 40 {
		return string(p[:40]) + "..."
	}
	return string(p)
}

// noStrays verifies that the backend wrote nothing outside dir: the layout
// under the check's base directory is exactly what the suite created.
func (e *env) noStrays() error {
	var strays []string
	err := filepath.WalkDir(e.base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch path {
		case e.dir:
			return filepath.SkipDir
		case e.base, filepath.Dir(e.dir), filepath.Dir(filepath.Dir(e.dir)), e.sibling, e.scratch:
			return nil
		}
		if filepath.Dir(path) == e.scratch && strings.HasPrefix(d.Name(), "suite-") {
			return nil
		}
		rel, _ := filepath.Rel(e.base, path)
		strays = append(strays, rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("looking for files written outside the backend's directory: %w", err)
	}
	if len(strays) > 0 {
		sort.Strings(strays)
		if len(strays) > 10 {
			strays = append(strays[:10], "...")
		}
		return fmt.Errorf("the backend wrote outside its directory %s: %q", e.dir, strays)
	}
	return nil
}
