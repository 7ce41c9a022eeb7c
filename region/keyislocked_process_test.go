package region_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/region"
)

// TestKeyIsLockedHelperProcess is not a test: it is the other process of
// TestKeyIsLockedAcrossProcesses (the test binary re-executed). It creates
// key "k" in the filesystem region at KEYLOCK_DIR with a creator that says
// "creating" and runs until its stdin closes.
func TestKeyIsLockedHelperProcess(t *testing.T) {
	dir := os.Getenv("KEYLOCK_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	r, err := region.Open("filesystem", backends.Args{"base_dir": dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	v, err := region.GetOrCreate(context.Background(), r, "k", func(context.Context) (string, error) {
		fmt.Println("creating")
		io.Copy(io.Discard, os.Stdin)
		return "from helper", nil
	})
	r.Close()
	fmt.Println("done", v, err)
	os.Exit(0)
}

// TestKeyIsLockedAcrossProcesses: KeyIsLocked is true while a creator in
// another process runs (filesystem, distributed_lock), false after it
// returned, and false once a creator's process is killed mid-creation.
func TestKeyIsLockedAcrossProcesses(t *testing.T) {
	if os.Getenv("KEYLOCK_DIR") != "" {
		t.Skip("in the helper process")
	}
	dir := t.TempDir()
	r, err := region.Open("filesystem", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()

	start := func() (*exec.Cmd, io.WriteCloser) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeyIsLockedHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KEYLOCK_DIR="+dir)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case line <- sc.Text():
				default:
				}
			}
		}()
		select {
		case l := <-line:
			if l != "creating" {
				t.Fatalf("helper said %q", l)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("helper never started creating")
		}
		return cmd, stdin
	}

	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("before any creator: %v, %v", locked, err)
	}
	cmd, stdin := start()
	for i := range 3 { // asking does not take the lock away from the creator
		if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || !locked {
			t.Fatalf("ask %d, while the other process creates: %v, %v", i, locked, err)
		}
	}
	if locked, _ := r.KeyIsLocked(ctx, "other"); locked {
		t.Fatal("another key reported locked")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("after the creator returned: %v, %v", locked, err)
	}
	if v, err := region.Get[string](ctx, r, "k"); err != nil || v != "from helper" {
		t.Fatalf("the helper's value: %q, %v", v, err)
	}

	// A creator killed mid-creation frees the key at once.
	r.Delete(ctx, "k")
	cmd, _ = start()
	if locked, _ := r.KeyIsLocked(ctx, "k"); !locked {
		t.Fatal("second creator not seen")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if locked, err := r.KeyIsLocked(ctx, "k"); err != nil || locked {
		t.Fatalf("after the creator's process was killed: %v, %v", locked, err)
	}
}
