//go:build linux

package fetch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/fetch"
)

// TestMain lets the test binary be the worker processes of the
// cross-process download (fetchWorker, through internal/stampedetest).
func TestMain(m *testing.M) {
	stampedetest.Main(m, map[string]stampedetest.WorkerFunc{"fetch": stampedetest.Kind(fetchWorker)})
}

// fetchSpec is what a fetchWorker does: Goroutines concurrent fetch.File
// calls of URL (entries expiring after Expire) on the rawfs region in Dir;
// a right body has the SHA-256 SHA256 (hex).
type fetchSpec struct {
	Dir, URL, SHA256 string
	Expire           time.Duration
	Goroutines       int
}

// fetchResult is what fetchWorker reports: calls that read the right body,
// a wrong one, or failed.
type fetchResult struct{ OK, Bad, Errors int }

// fetchWorker runs, once released, its goroutines' fetch.File calls and
// checks each body read.
func fetchWorker(spec fetchSpec) (any, error) {
	r, err := region.Open("rawfs", backends.Args{"base_dir": spec.Dir})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	stampedetest.Ready()
	var ok, bad, errs atomic.Int64
	var wg sync.WaitGroup
	for range spec.Goroutines {
		wg.Go(func() {
			f, err := fetch.File(context.Background(), r, spec.URL, fetch.WithCallOptions(region.ExpireAfter(spec.Expire)))
			if err != nil {
				errs.Add(1)
				fmt.Fprintln(os.Stderr, err)
				return
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != spec.SHA256 {
				bad.Add(1)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	return fetchResult{int(ok.Load()), int(bad.Load()), int(errs.Load())}, nil
}

// runWorkers starts procs workers of spec, releases them at once, and
// returns the summed ok, bad and errors.
func runWorkers(t *testing.T, procs int, spec fetchSpec) (ok, bad, errs int) {
	t.Helper()
	for _, r := range stampedetest.RunAll[fetchResult](t, procs, "fetch", func(int) any { return spec }) {
		ok, bad, errs = ok+r.OK, bad+r.Bad, errs+r.Errors
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
	spec := fetchSpec{Dir: t.TempDir(), URL: srv.URL + "/big.txt", SHA256: hex.EncodeToString(sum[:]),
		Expire: 2 * time.Second, Goroutines: gor}

	ok, bad, errs := runWorkers(t, procs, spec)
	t.Logf("cold: %d ok, %d bad, %d errors; %d requests, %d body bytes", ok, bad, errs, srv.requests.Load(), srv.bodyBytes.Load())
	if ok != procs*gor || bad != 0 || errs != 0 {
		t.Fatalf("cold: %d ok, %d bad, %d errors; want %d ok", ok, bad, errs, procs*gor)
	}
	if n, b := srv.requests.Load(), srv.bodyBytes.Load(); n != 1 || b != int64(len(body)) {
		t.Fatalf("cold: %d requests and %d body bytes, want 1 download of %d bytes", n, b, len(body))
	}

	time.Sleep(2100 * time.Millisecond) // the record is now stale
	ok, bad, errs = runWorkers(t, procs, spec)
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
