package region_test

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
)

// TestMain lets the test binary be the other process of
// TestKeyIsLockedAcrossProcesses (internal/stampedetest).
func TestMain(m *testing.M) {
	stampedetest.Main(m, map[string]stampedetest.WorkerFunc{keyCreatorKind: stampedetest.Kind(keyCreatorWorker)})
}

// keyCreatorKind is the other process of TestKeyIsLockedAcrossProcesses: it
// creates key "k" in the filesystem region at Dir with a creator that says
// "creating" and runs until the parent releases it.
const keyCreatorKind = "key-creator"

type keyCreatorSpec struct{ Dir string }

func keyCreatorWorker(spec keyCreatorSpec) (any, error) {
	r, err := region.Open("filesystem", backends.Args{"base_dir": spec.Dir})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return region.GetOrCreate(context.Background(), r, "k", func(context.Context) (string, error) {
		stampedetest.Ready() // says "ready" while holding the lock, waits for the release
		return "from helper", nil
	})
}

// TestKeyIsLockedAcrossProcesses: KeyIsLocked is true while a creator in
// another process runs (filesystem, distributed_lock), false after it
// returned, and false once a creator's process is killed mid-creation.
func TestKeyIsLockedAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	r, err := region.Open("filesystem", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	start := func() *stampedetest.Worker {
		t.Helper()
		w := stampedetest.Launch(t, keyCreatorKind, keyCreatorSpec{Dir: dir})
		w.Expect(t, "ready") // inside its creator
		return w
	}

	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("before any creator: %v, %v", locked, err)
	}
	w := start()
	for i := range 3 { // asking does not take the lock away from the creator
		if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || !locked {
			t.Fatalf("ask %d, while the other process creates: %v, %v", i, locked, err)
		}
	}
	if locked, _ := r.KeyIsLocked(ctx, "other"); locked {
		t.Fatal("another key reported locked")
	}
	w.Release()
	var got string
	w.Result(t, &got)
	if got != "from helper" {
		t.Fatalf("the other process's creator returned %q", got)
	}
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("after the creator returned: %v, %v", locked, err)
	}
	if v, err := region.Get[string](ctx, r, "k"); err != nil || v != "from helper" {
		t.Fatalf("the helper's value: %q, %v", v, err)
	}

	// A creator killed mid-creation frees the key at once.
	r.Delete(ctx, "k")
	w = start()
	if locked, _ := r.KeyIsLocked(ctx, "k"); !locked {
		t.Fatal("second creator not seen")
	}
	w.Kill()
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("after the creator's process was killed: %v, %v", locked, err)
	}
}
