//go:build linux

package rawfs_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
)

// TestMain lets the test binary be the worker processes of the file
// stampede (fileWorker, through internal/stampedetest).
func TestMain(m *testing.M) {
	stampedetest.Main(m, map[string]stampedetest.WorkerFunc{"getorcreatefile": stampedetest.Kind(fileWorker)})
}

// fileSpec is what a fileWorker does: Goroutines callers on the rawfs
// region in Dir.
type fileSpec struct {
	Dir        string
	Goroutines int
}

// fileResult is what a fileWorker reports.
type fileResult struct{ Creations, Errors, Bad int }

// fileWorker runs, once released, its goroutines' GetOrCreateFile calls on
// one key, and counts creations, errors, and files that read back wrong.
func fileWorker(spec fileSpec) (any, error) {
	r, err := region.Open("rawfs", backends.Args{"base_dir": spec.Dir})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	stampedetest.Ready()
	var creations, errs, bad atomic.Int64
	var wg sync.WaitGroup
	for range spec.Goroutines {
		wg.Go(func() {
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
		})
	}
	wg.Wait()
	return fileResult{int(creations.Load()), int(errs.Load()), int(bad.Load())}, nil
}

func fileValue() []byte { return bytes.Repeat([]byte("0123456789abcdef"), 1<<14) } // 256 KiB

func TestGetOrCreateFileStampedeAcrossProcesses(t *testing.T) {
	const procs, gor = 6, 16
	for round := range 5 {
		spec := fileSpec{Dir: t.TempDir(), Goroutines: gor}
		var creations, errs, bad int
		for _, r := range stampedetest.RunAll[fileResult](t, procs, "getorcreatefile", func(int) any { return spec }) {
			creations, errs, bad = creations+r.Creations, errs+r.Errors, bad+r.Bad
		}
		if creations != 1 || errs != 0 || bad != 0 {
			t.Fatalf("round %d: %d creations, %d errors, %d wrong files for %d callers; want 1, 0, 0", round, creations, errs, bad, procs*gor)
		}
	}
}
