package reflink

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestClone: where Clone reports true, dst holds exactly src's bytes; where
// it reports false (most filesystems), dst is untouched.
func TestClone(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("reflink "), 8192)
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Write(want); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	ok := Clone(dst, src)
	got, err := os.ReadFile(dst.Name())
	if err != nil {
		t.Fatal(err)
	}
	if ok && !bytes.Equal(got, want) {
		t.Fatalf("Clone reported true but dst holds %d bytes, not src's %d", len(got), len(want))
	}
	if !ok && len(got) != 0 {
		t.Fatalf("Clone reported false but dst holds %d bytes", len(got))
	}
	t.Logf("reflink clone supported here: %v", ok)
}
