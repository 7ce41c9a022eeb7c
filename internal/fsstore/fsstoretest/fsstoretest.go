// Package fsstoretest is the test scaffolding shared by the tests and
// benchmarks of the two backends on internal/fsstore, filesystem and rawfs:
// their conformance harness and its argument variants, opening a region on
// a fresh cache directory, planting a hostile tmp/ symlink, and reporting a
// benchmark against its interleaved floor. It is for tests only.
package fsstoretest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/region"
)

// Variant is one argument set under which a file backend runs the
// conformance suite: the harness is named after the backend plus Suffix, and
// Args are added to base_dir (and expiration_time, for the storage-expiry
// check).
type Variant struct {
	Suffix string
	Args   backends.Args
}

// The variants every file backend runs.
var (
	// Default is the backend with base_dir only.
	Default = Variant{}
	// NoDistributedLock turns the directory's file lock off.
	NoDistributedLock = Variant{"(distributed_lock=false)", backends.Args{"distributed_lock": false}}
	// WithCacheSize sets a bound large enough for every check's data:
	// eviction runs but must not break any contract.
	WithCacheSize = Variant{"(cache_size)", backends.Args{"cache_size": "1GiB"}}
)

// Harness returns the conformance harness of the backend called name,
// opened by open on the suite's directory (base_dir) with v.Args, and with
// expiration_time for OpenWithTTL. The harness is named name+v.Suffix.
func Harness[B backends.Backend](name string, open func(backends.Args) (B, error), v Variant) conformance.Harness {
	openDir := func(dir string, ttl time.Duration) (backends.Backend, error) {
		args := backends.Args{"base_dir": dir}
		for k, a := range v.Args {
			args[k] = a
		}
		if ttl > 0 {
			args["expiration_time"] = ttl
		}
		return open(args)
	}
	return conformance.Harness{
		Name: name + v.Suffix,
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return openDir(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return openDir(dir, ttl)
		},
	}
}

// RunConformance runs the conformance suite on Harness(name, open, v).
func RunConformance[B backends.Backend](t *testing.T, name string, open func(backends.Args) (B, error), v Variant) {
	t.Helper()
	conformance.Run(t, Harness(name, open, v))
}

// OpenRegion opens a region on the backend registered as name with args
// (base_dir defaults to a fresh t.TempDir(); args is modified), closes it
// when t ends, and returns it with its backend, which must be a B. It fails t
// on any error.
func OpenRegion[B backends.Backend](t testing.TB, name string, args backends.Args, opts ...region.Option) (*region.Region, B) {
	t.Helper()
	if args["base_dir"] == nil {
		args["base_dir"] = t.TempDir()
	}
	r, err := region.Open(name, args, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	b, ok := r.Backend().(B)
	if !ok {
		t.Fatalf("backend is %T", r.Backend())
	}
	return r, b
}

// Precious is the content of the file SymlinkedTmp plants behind the link.
const Precious = "keep me"

// SymlinkedTmp makes a fresh cache directory dir whose tmp/ (fsstore.TempDir)
// is a symlink to another fresh directory, target, holding one file,
// precious, whose content is Precious and whose modification time is two
// days old (old enough for any sweep). Nothing the cache does may follow the
// link: the test checks that target still holds exactly precious, unchanged.
func SymlinkedTmp(t testing.TB) (dir, target, precious string) {
	t.Helper()
	target = t.TempDir()
	precious = filepath.Join(target, "precious")
	if err := os.WriteFile(precious, []byte(Precious), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(precious, past, past); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.Symlink(target, filepath.Join(dir, fsstore.TempDir)); err != nil {
		t.Fatal(err)
	}
	return dir, target, precious
}

// ReportVsFloor reports a benchmark that timed, in each iteration of its
// loop, an operation (opNs in all) and then its floor, the plain file-system
// work it is compared with (floorNs in all), interleaved so that both see
// the same machine. The metrics are op+"-ns/op", "floor-ns/op" and
// op+"/floor" (the ratio of the two).
func ReportVsFloor(b *testing.B, op string, opNs, floorNs time.Duration) {
	b.ReportMetric(float64(opNs.Nanoseconds())/float64(b.N), op+"-ns/op")
	b.ReportMetric(float64(floorNs.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(opNs)/float64(floorNs), op+"/floor")
}
