//go:build linux

package filesystem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/internal/stampedetest"
	"github.com/regioncache/regioncache/region"
)

// bigWriter stores values of 256 KiB to 3 MiB under 20 keys until it is
// killed: with rawfs through CreateTemp and a move, otherwise with Set.
func bigWriter(ctx context.Context, r *region.Region) error {
	b := r.Backend()
	stampedetest.Say("ready")
	rnd := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	buf := bytes.Repeat([]byte("0123456789abcdef"), (4<<20)/16)
	for {
		key := fmt.Sprint("b-", rnd.IntN(20))
		size := 256<<10 + rnd.IntN(3<<20)
		e := backends.Entry{Created: time.Now()}
		if fst, ok := b.(backends.FileStore); ok {
			f, err := b.(backends.TempFiler).CreateTemp("big-*")
			if err != nil {
				return err
			}
			if _, err := f.Write(buf[:size]); err != nil {
				return err
			}
			err = fst.StoreFile(ctx, key, f, e, true)
			f.Close()
			if err != nil {
				return err
			}
			continue
		}
		e.Payload = buf[:size]
		if err := b.Set(ctx, key, e); err != nil {
			return err
		}
	}
}

// dirBytes sums the sizes of every regular file under dir except the lock
// and size files: entries, data files, temporary files, tmp/.
func dirBytes(dir string) (total int64, leftovers int) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		switch d.Name() {
		case fsstore.LockFile, fsstore.StoreLockFile, fsstore.SizeFile:
			return nil
		}
		if fi, err := d.Info(); err == nil {
			total += fi.Size()
		}
		if strings.HasPrefix(d.Name(), ".tmp-") || filepath.Base(filepath.Dir(p)) == fsstore.TempDir {
			leftovers++
		}
		return nil
	})
	return total, leftovers
}

// Point 10: writers SIGKILLed mid-write leave temporary files (and, for
// rawfs, files in tmp/ and unreferenced data files); once a process has the
// directory open, disk use comes back within cache_size plus its slack in
// seconds, not after an hour.
func TestKilledWritersLeftoversSweptWithinBound(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 40 writer processes")
	}
	for _, backend := range []string{"filesystem", "rawfs"} {
		t.Run(backend, func(t *testing.T) {
			const cacheSize = 8 << 20
			dir := t.TempDir()
			spec := fsSpec{Dir: dir, Backend: backend, CacheSize: cacheSize}
			rnd := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
			for range 40 {
				p := stampedetest.Launch(t, "bigwriter", spec)
				p.Expect(t, "ready")
				time.Sleep(time.Duration(20+rnd.IntN(100)) * time.Millisecond)
				p.Kill()
			}
			before, left := dirBytes(dir)
			t.Logf("after 40 kills: %d bytes in files, %d temporary files and tmp/ files", before, left)
			r, err := region.Open(backend, backends.Args{"base_dir": dir, "cache_size": cacheSize})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			bound := int64(cacheSize * (1 + fsstore.Slack))
			t0 := time.Now()
			for {
				now, left := dirBytes(dir)
				if now <= bound {
					t.Logf("within %d bytes (cache_size plus slack) %v after Open: %d bytes, %d leftovers", bound, time.Since(t0).Round(time.Millisecond), now, left)
					break
				}
				if time.Since(t0) > time.Minute {
					t.Fatalf("a minute after Open the directory still holds %d bytes (%d leftovers); bound %d", now, left, bound)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// loadValue is the value of key in the load test: 1 to 8 KiB, derived from
// the key, so that any reader can check it.
func loadValue(key string) []byte {
	h := fnv.New32a()
	h.Write([]byte(key))
	n := 1024 + int(h.Sum32()%7168)
	return bytes.Repeat([]byte(key+";"), n/(len(key)+1)+1)[:n]
}

// loadWorker runs G goroutines of GetOrCreate (GetOrCreateFile on rawfs) on
// K keys for D. Creators check, with an O_EXCL marker file per key shared by
// every process, that no other creator of their key runs at the same time.
func loadWorker(ctx context.Context, r *region.Region, spec fsSpec, res *helperResult) error {
	g, keys, d, marks := spec.Goroutines, spec.Keys, spec.Duration, spec.Marks
	_, files := r.Backend().(backends.FileStore)
	stampedetest.Ready()
	var calls, creations, wrong, overlaps atomic.Int64
	var mu sync.Mutex
	var errs []string
	enter := func(key string) func() {
		creations.Add(1)
		m := filepath.Join(marks, fmt.Sprintf("%x", key))
		f, err := os.OpenFile(m, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				overlaps.Add(1)
			}
			return func() {}
		}
		f.Close()
		time.Sleep(time.Millisecond) // a creation takes a while
		return func() { os.Remove(m) }
	}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(i)))
			for time.Now().Before(end) {
				key := "load-" + strconv.Itoa(rnd.IntN(keys))
				want := loadValue(key)
				var got []byte
				var err error
				if files {
					var f *os.File
					f, err = region.GetOrCreateFile(ctx, r, key, func(ctx context.Context) (*os.File, error) {
						defer enter(key)()
						tmp, err := r.CreateTemp("load-*")
						if err != nil {
							return nil, err
						}
						_, err = tmp.Write(want)
						return tmp, err
					}, region.MoveFile())
					if err == nil {
						got, err = io.ReadAll(f)
						f.Close()
					}
				} else {
					got, err = region.GetOrCreate(ctx, r, key, func(ctx context.Context) ([]byte, error) {
						defer enter(key)()
						return want, nil
					})
				}
				calls.Add(1)
				switch {
				case err != nil:
					mu.Lock()
					if len(errs) < 20 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				case !bytes.Equal(got, want):
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res.Callers, res.Creations, res.Wrong, res.Overlaps = calls.Load(), creations.Load(), wrong.Load(), overlaps.Load()
	res.Errors = errs
	return nil
}

// The cross-process load test: 8 processes x 16 goroutines on 1000 keys that
// expire every 500ms, with a cache_size that holds about a fifth of them, on
// filesystem and on rawfs: no errors, no wrong values, never two creators of
// one key at once, and disk use (every file in the directory, temporary ones
// included) within cache_size plus its slack plus the values being written.
// REGIONCACHE_LOAD_DURATION sets the duration (default 3s; the run
// is 30s).
func TestLoadAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 8 processes per backend")
	}
	const procs, gor, keys = 8, 16, 1000
	const cacheSize = 1 << 20 // the 1000 values take about 4.5 MiB
	d := 3 * time.Second
	if s := os.Getenv("REGIONCACHE_LOAD_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, backend := range []string{"filesystem", "rawfs"} {
		t.Run(backend, func(t *testing.T) {
			dir, marks := t.TempDir(), t.TempDir()
			spec := fsSpec{Dir: dir, Backend: backend, Marks: marks, CacheSize: cacheSize, Expiration: 500 * time.Millisecond,
				Goroutines: gor, Keys: keys, Duration: d}
			var peak int64
			var samples []int64
			var res helperResult
			sampleWhile(20*time.Millisecond, func() {
				b, _ := dirBytes(dir)
				peak = max(peak, b)
				samples = append(samples, b)
			}, func() { res = runAll(t, procs, "load", spec) })
			slices.Sort(samples)
			// The documented bound: cache_size plus its slack, plus the
			// values being written (at most one per goroutine).
			bound := int64(cacheSize*(1+fsstore.Slack)) + procs*gor*8<<10
			t.Logf("%s, %v: %d calls (%.0f/s), %d creations, %d errors, %d wrong values, %d overlapping creators; disk peak %d bytes (%.2fx cache_size), p50 %d, p99 %d; bound %d",
				backend, d, res.Callers, float64(res.Callers)/d.Seconds(), res.Creations, len(res.Errors), res.Wrong, res.Overlaps,
				peak, float64(peak)/cacheSize, samples[len(samples)/2], samples[len(samples)*99/100], bound)
			if len(res.Errors) > 0 {
				t.Errorf("%d errors, first: %s", len(res.Errors), res.Errors[0])
			}
			if res.Wrong > 0 || res.Overlaps > 0 {
				t.Errorf("%d wrong values, %d times two creators of one key ran at once", res.Wrong, res.Overlaps)
			}
			if peak > bound {
				t.Errorf("disk peaked at %d bytes, over the bound %d", peak, bound)
			}
			if res.Callers < procs*gor {
				t.Errorf("only %d calls", res.Callers)
			}
		})
	}
}
