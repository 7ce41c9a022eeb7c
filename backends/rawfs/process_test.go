//go:build linux

package rawfs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// TestMain lets the test binary act as a worker process: with
// REGIONCACHE_RAWFS_HELPER set it runs G goroutines of GetOrCreateFile on one
// key after its stdin closes, and prints "creations errors bad-reads".
func TestMain(m *testing.M) {
	if os.Getenv("REGIONCACHE_RAWFS_HELPER") == "" {
		os.Exit(m.Run())
	}
	r, err := region.Open("rawfs", backends.Args{"base_dir": os.Getenv("RAWFS_DIR")})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	g, _ := strconv.Atoi(os.Getenv("RAWFS_GOROUTINES"))
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	var creations, errs, bad atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := region.GetOrCreateFile(context.Background(), r, "big", func(ctx context.Context) (*os.File, error) {
				creations.Add(1)
				tmp, err := r.CreateTemp("big-*")
				if err != nil {
					return nil, err
				}
				_, err = tmp.Write(fileValue())
				return tmp, err
			}, region.MoveFile())
			if err != nil {
				errs.Add(1)
				fmt.Fprintln(os.Stderr, err)
				return
			}
			defer f.Close()
			if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, fileValue()) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	r.Close()
	fmt.Println(creations.Load(), errs.Load(), bad.Load())
	os.Exit(0)
}

func fileValue() []byte { return bytes.Repeat([]byte("0123456789abcdef"), 1<<14) } // 256 KiB

func TestGetOrCreateFileStampedeAcrossProcesses(t *testing.T) {
	const procs, gor = 6, 16
	for round := range 5 {
		dir := t.TempDir()
		type p struct {
			cmd *exec.Cmd
			in  io.WriteCloser
			out *bufio.Reader
		}
		var ps []p
		for range procs {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "REGIONCACHE_RAWFS_HELPER=1", "RAWFS_DIR="+dir, "RAWFS_GOROUTINES="+strconv.Itoa(gor))
			cmd.Stderr = os.Stderr
			in, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			ps = append(ps, p{cmd, in, bufio.NewReader(out)})
		}
		for _, x := range ps {
			if l, _ := x.out.ReadString('\n'); l != "ready\n" {
				t.Fatalf("helper: %q", l)
			}
		}
		for _, x := range ps {
			x.in.Close()
		}
		var creations, errs, bad int
		for _, x := range ps {
			l, _ := x.out.ReadString('\n')
			var c, e, b int
			if _, err := fmt.Sscan(strings.TrimSpace(l), &c, &e, &b); err != nil {
				t.Fatalf("helper said %q", l)
			}
			creations, errs, bad = creations+c, errs+e, bad+b
			x.cmd.Wait()
		}
		if creations != 1 || errs != 0 || bad != 0 {
			t.Fatalf("round %d: %d creations, %d errors, %d wrong files for %d callers; want 1, 0, 0", round, creations, errs, bad, procs*gor)
		}
	}
}
