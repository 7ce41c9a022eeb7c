package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// The helper process modes, selected by REGIONCACHE_LOCK_HELPER.
func TestMain(m *testing.M) {
	switch os.Getenv("REGIONCACHE_LOCK_HELPER") {
	case "":
		os.Exit(m.Run())
	case "hold":
		// Lock the key, say so, then wait to be killed.
		l, err := lock.NewFileLocker(os.Getenv("LOCK_PATH"))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if _, err := l.Lock(context.Background(), os.Getenv("LOCK_KEY")); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "count":
		os.Exit(helperCount())
	}
	os.Exit(3)
}

// helperCount increments the number in COUNT_FILE N times from G goroutines,
// each read-modify-write under the lock. Lost updates mean broken exclusion.
func helperCount() int {
	l, err := lock.NewFileLocker(os.Getenv("LOCK_PATH"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv("COUNT_N"))
	g, _ := strconv.Atoi(os.Getenv("COUNT_G"))
	path := os.Getenv("COUNT_FILE")
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				h, err := l.Lock(context.Background(), "counter")
				if err != nil {
					errs <- err
					return
				}
				b, _ := os.ReadFile(path)
				v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				if err := os.WriteFile(path, []byte(strconv.Itoa(v+1)), 0o600); err != nil {
					errs <- err
				}
				// Release from another goroutine half of the time.
				if v%2 == 0 {
					done := make(chan error)
					go func() { done <- h.Unlock() }()
					err = <-done
				} else {
					err = h.Unlock()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"REGIONCACHE_LOCK_HELPER=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestFileLockerMutualExclusionAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	countPath := filepath.Join(dir, "count")
	const procs, gor, n = 4, 4, 25
	var cmds []*exec.Cmd
	for range procs {
		c := helper(t, "count", "LOCK_PATH="+lockPath, "COUNT_FILE="+countPath,
			"COUNT_N="+strconv.Itoa(n), "COUNT_G="+strconv.Itoa(gor))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	b, err := os.ReadFile(countPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(procs*gor*n) {
		t.Fatalf("counter = %s, want %d (lost updates: the lock did not exclude)", got, procs*gor*n)
	}
}

func startHolder(t *testing.T, lockPath, key string) *exec.Cmd {
	t.Helper()
	c := helper(t, "hold", "LOCK_PATH="+lockPath, "LOCK_KEY="+key)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return c
}

func TestFileLockerKilledHolderFreesKeyAtOnce(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	holder := startHolder(t, lockPath, "k")
	l, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if _, ok, err := l.TryLock(ctx, "k"); ok || err != nil {
		t.Fatalf("TryLock while another process holds it: ok=%v err=%v", ok, err)
	}
	// Another key is not affected.
	h2, ok, err := l.TryLock(ctx, "other")
	if !ok || err != nil {
		t.Fatalf("TryLock of an unrelated key: ok=%v err=%v", ok, err)
	}
	h2.Unlock()
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	// The kernel released it when the process died: the very first try wins.
	h, ok, err := l.TryLock(ctx, "k")
	if !ok || err != nil {
		t.Fatalf("TryLock after the holder was killed: ok=%v err=%v", ok, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestFileLockerWaitIsCancelledByContext(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	startHolder(t, lockPath, "k")
	l, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	h, err := l.Lock(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) || h != nil {
		t.Fatalf("Lock = %v, %v; want DeadlineExceeded", h, err)
	}
	// The in-process lock was released with the failed wait.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := l.Lock(ctx2, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock = %v; want DeadlineExceeded again", err)
	}
}

func TestFileLockerWaiterGetsLockWhenReleased(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	a, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	ha, err := a.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Two lockers on one file exclude each other like two processes.
	if _, ok, _ := b.TryLock(ctx, "k"); ok {
		t.Fatal("second locker on the same file took a held key")
	}
	got := make(chan lock.Handle)
	go func() {
		h, err := b.Lock(ctx, "k")
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	// Release from a different goroutine than the one that locked.
	go func() {
		time.Sleep(5 * time.Millisecond)
		if err := ha.Unlock(); err != nil {
			t.Error(err)
		}
	}()
	hb := <-got
	if err := ha.Unlock(); !errors.Is(err, lock.ErrReleased) {
		t.Fatalf("second Unlock = %v, want ErrReleased", err)
	}
	if err := hb.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestFileLockerGoroutinesExclude(t *testing.T) {
	l, err := lock.NewFileLocker(filepath.Join(t.TempDir(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	inside, max := 0, 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				h, err := l.Lock(context.Background(), "k")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				if inside > max {
					max = inside
				}
				mu.Unlock()
				time.Sleep(10 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				h.Unlock()
			}
		}()
	}
	wg.Wait()
	if max != 1 {
		t.Fatalf("%d goroutines held the lock at once", max)
	}
}

func TestFileLockerCloseWhileHeld(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	l, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Unlock(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Unlock after Close = %v, want ErrLost", err)
	}
	if _, err := l.Lock(context.Background(), "k"); !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("Lock after Close = %v, want ErrClosed", err)
	}
	// Closing released the file lock for everyone else.
	m, err := lock.NewFileLocker(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, ok, err := m.TryLock(context.Background(), "k"); !ok || err != nil {
		t.Fatalf("TryLock after the holder's locker closed: %v %v", ok, err)
	}
}

func ExampleFileLocker() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	l, err := lock.NewFileLocker(filepath.Join(dir, "cache.lock"))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	h, err := l.Lock(context.Background(), "report:2024")
	if err != nil {
		panic(err)
	}
	// ... only one goroutine of one process runs here at a time ...
	fmt.Println(h.Unlock())
	// Output: <nil>
}
