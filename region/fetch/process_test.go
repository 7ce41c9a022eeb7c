//go:build linux

package fetch_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/fetch"
)

// TestMain lets the test binary act as a worker process: with
// REGIONCACHE_FETCH_HELPER set it opens the rawfs region in FETCH_DIR,
// prints "ready", waits for its stdin to close, runs FETCH_GOROUTINES
// concurrent fetch.File calls of FETCH_URL, and prints "ok bad errors" with
// the number of calls that read the body whose SHA-256 is FETCH_SHA256.
func TestMain(m *testing.M) {
	if os.Getenv("REGIONCACHE_FETCH_HELPER") == "" {
		os.Exit(m.Run())
	}
	r, err := region.Open("rawfs", backends.Args{"base_dir": os.Getenv("FETCH_DIR")})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	g, _ := strconv.Atoi(os.Getenv("FETCH_GOROUTINES"))
	exp, _ := time.ParseDuration(os.Getenv("FETCH_EXPIRE"))
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	var ok, bad, errs atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fetch.File(context.Background(), r, os.Getenv("FETCH_URL"), fetch.WithCallOptions(region.ExpireAfter(exp)))
			if err != nil {
				errs.Add(1)
				fmt.Fprintln(os.Stderr, err)
				return
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != os.Getenv("FETCH_SHA256") {
				bad.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	r.Close()
	fmt.Println(ok.Load(), bad.Load(), errs.Load())
	os.Exit(0)
}

// runWorkers starts procs worker processes of gor goroutines each, releases
// them at once, and returns the summed "ok bad errors".
func runWorkers(t *testing.T, procs, gor int, env ...string) (ok, bad, errs int) {
	t.Helper()
	type worker struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	var ws []worker
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), append([]string{"REGIONCACHE_FETCH_HELPER=1", "FETCH_GOROUTINES=" + strconv.Itoa(gor)}, env...)...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := worker{cmd, in, bufio.NewReader(out)}
		ws = append(ws, w)
		t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	}
	for _, w := range ws {
		line, err := w.out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			t.Fatalf("worker: %q, %v", line, err)
		}
	}
	for _, w := range ws {
		w.in.Close()
	}
	for _, w := range ws {
		line, err := w.out.ReadString('\n')
		if err != nil {
			t.Fatalf("worker result: %v", err)
		}
		var o, b, e int
		if _, err := fmt.Sscan(line, &o, &b, &e); err != nil {
			t.Fatalf("worker result %q: %v", line, err)
		}
		ok, bad, errs = ok+o, bad+b, errs+e
		w.cmd.Wait()
	}
	return ok, bad, errs
}

// TestOneDownloadAcrossProcesses: 8 processes x 8 goroutines fetching one
// cold URL cause one download; once the entry is stale, 8 x 8 callers
// cause one conditional request and no body bytes, and every caller reads
// the right body both times.
func TestOneDownloadAcrossProcesses(t *testing.T) {
	const procs, gor = 8, 8
	body := strings.Repeat("cross-process body\n", 50000) // ~1 MB
	srv := newServer(t, body)
	srv.setDelay(200 * time.Millisecond) // callers overlap the download
	sum := sha256.Sum256([]byte(body))
	env := []string{"FETCH_DIR=" + t.TempDir(), "FETCH_URL=" + srv.URL + "/big.txt",
		"FETCH_SHA256=" + hex.EncodeToString(sum[:]), "FETCH_EXPIRE=2s"}

	ok, bad, errs := runWorkers(t, procs, gor, env...)
	t.Logf("cold: %d ok, %d bad, %d errors; %d requests, %d body bytes", ok, bad, errs, srv.requests.Load(), srv.bodyBytes.Load())
	if ok != procs*gor || bad != 0 || errs != 0 {
		t.Fatalf("cold: %d ok, %d bad, %d errors; want %d ok", ok, bad, errs, procs*gor)
	}
	if n, b := srv.requests.Load(), srv.bodyBytes.Load(); n != 1 || b != int64(len(body)) {
		t.Fatalf("cold: %d requests and %d body bytes, want 1 download of %d bytes", n, b, len(body))
	}

	time.Sleep(2100 * time.Millisecond) // the record is now stale
	ok, bad, errs = runWorkers(t, procs, gor, env...)
	t.Logf("stale: %d ok, %d bad, %d errors; %d requests (%d conditional, %d 304), %d body bytes in all",
		ok, bad, errs, srv.requests.Load(), srv.conditional.Load(), srv.notModified.Load(), srv.bodyBytes.Load())
	if ok != procs*gor || bad != 0 || errs != 0 {
		t.Fatalf("stale: %d ok, %d bad, %d errors; want %d ok", ok, bad, errs, procs*gor)
	}
	if n, c, nm, b := srv.requests.Load(), srv.conditional.Load(), srv.notModified.Load(), srv.bodyBytes.Load(); n != 2 || c != 1 || nm != 1 || b != int64(len(body)) {
		t.Fatalf("stale: %d requests, %d conditional, %d 304s, %d body bytes; want 2, 1, 1 and no body bytes beyond the first %d",
			n, c, nm, b, len(body))
	}
}
