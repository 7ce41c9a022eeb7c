package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/conformance/brokentest"
	"github.com/regioncache/regioncache/internal/memcachedtest"
	"github.com/regioncache/regioncache/internal/redistest"
)

// TestConformanceMemory runs the whole conformance suite against the memory
// backend served as a plugin: a real process per opened backend.
func TestConformanceMemory(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "memory-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("memory"), backends.Args{"copy_values": true})
		},
	})
}

// TestConformanceMemoryKeepsValues serves the memory backend in its default
// mode: it keeps values, which cannot cross the process boundary, so the
// plugin must not claim keeps-values.
func TestConformanceMemoryKeepsValues(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "memory-plugin-default",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("memory"), nil)
		},
	})
}

// TestConformanceBolt runs the suite against the example third-party plugin
// (examples/plugins/boltbackend): locks, tags, listing, shared storage and
// file streaming through the protocol.
func TestConformanceBolt(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "bolt-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(pluginPath("bolt"), backends.Args{"base_dir": dir, "inline_max": 4096})
		},
	})
}

// TestFaultsThroughPlugin serves each of conformance/brokentest's wrappers
// as a plugin: every deliberately broken one must still fail the check that
// catches it in-process, and every correct one (a lock, a lock bound to its
// context, storage expiry, files) must pass the whole suite. This proves
// the transport neither hides faults nor breaks capabilities.
func TestFaultsThroughPlugin(t *testing.T) {
	bin := pluginPath("faults")
	harness := func(f brokentest.Fault) conformance.Harness {
		inproc := f.Harness()
		h := conformance.Harness{
			Name:                f.Name,
			LockEndsWithContext: f.LockEndsWithContext,
			Open: func(ctx context.Context, dir string) (backends.Backend, error) {
				return Open(bin, backends.Args{"dir": dir}, WithName("fault-"+f.Name))
			},
		}
		if inproc.OpenWithTTL != nil {
			h.OpenWithTTL = func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
				return Open(bin, backends.Args{"dir": dir, "ttl": ttl}, WithName("fault-"+f.Name))
			}
		}
		return h
	}
	// Faults the host side of the transport makes harmless, by enforcing
	// the contract itself: the host sees correct behaviour, so the check
	// passes through a plugin.
	masked := map[string]string{
		"ignores-close":   "the host refuses every call on a closed Backend without asking the plugin",
		"ignores-context": "the host's call returns when its context ends; the plugin drops the lock if it gets it later",
		"truncates-files": "the plugin hands its backend a fresh temporary file positioned at offset 0",
		// Faults of conformance/brokentest added with issue 11 (the
		// conformance helper): the host enforces these rules itself.
		"leaks-lock-on-ended-context": "the host's Lock with an ended context fails in the host (gRPC refuses the call) and never reaches the plugin",
		"writable-open-file":          "the host gives the caller its own copy of the streamed file, opened read-only",
		"unfenced-set":                "the host's SetFenced refuses a released handle itself, before asking the plugin",
		"recycles-payloads":           "the payloads cross the process boundary into fresh buffers of the host's, which Close does not touch",
	}
	for _, f := range brokentest.Faults() {
		t.Run("broken/"+f.Name, func(t *testing.T) {
			bin = pluginPath("fault-" + f.Name)
			rep := conformance.Check(t.Context(), harness(f), conformance.Only(f.Check), conformance.LargeValueSize(4<<20))
			res, ok := rep.Lookup(f.Check)
			want := conformance.Fail
			if why, ok := masked[f.Name]; ok {
				want = conformance.Pass
				t.Logf("%s is masked by the transport: %s", f.Name, why)
			}
			if !ok || res.Status != want {
				t.Errorf("check %s on %s through a plugin: %v %s, want %v", f.Check, f.Name, res.Status, res.Reason, want)
			}
		})
	}
	for _, f := range brokentest.Correct() {
		t.Run("correct/"+f.Name, func(t *testing.T) {
			bin = pluginPath("fault-" + f.Name)
			rep := conformance.Check(t.Context(), harness(f), conformance.LargeValueSize(4<<20))
			if rep.Failed() {
				var sb strings.Builder
				rep.WriteTable(&sb)
				t.Errorf("%s through a plugin failed:\n%s", f.Name, sb.String())
			}
		})
	}
}

// fileHarness serves an in-tree file backend (base_dir, expiration_time)
// as a plugin.
func fileHarness(name string) conformance.Harness {
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		args := backends.Args{"base_dir": dir}
		if ttl > 0 {
			args["expiration_time"] = ttl // a time.Duration: sent as "1s"
		}
		return Open(pluginPath(name), args)
	}
	return conformance.Harness{
		Name: name + "-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	}
}

func TestConformanceFilesystem(t *testing.T) { conformance.Run(t, fileHarness("filesystem")) }

func TestConformanceRawfs(t *testing.T) { conformance.Run(t, fileHarness("rawfs")) }

// TestConformanceRedis serves the redis backend as a plugin against a
// private redis-server (skipped when redis-server is not installed, unless
// REGIONCACHE_REQUIRE_REDIS says otherwise; see internal/redistest).
func TestConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		sum := sha256.Sum256([]byte(dir))
		args := backends.Args{"url": srv.URL(0), "prefix": "pl-" + hex.EncodeToString(sum[:8]), "lock_timeout": "5s"}
		if ttl > 0 {
			args["redis_expiration_time"] = ttl
		}
		return Open(pluginPath("redis"), args)
	}
	conformance.Run(t, conformance.Harness{
		Name: "redis-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	})
}

// TestConformanceMemcached serves the memcached backend as a plugin against
// a private memcached (skipped when memcached is not installed, unless
// REGIONCACHE_REQUIRE_MEMCACHED says otherwise; see internal/memcachedtest).
func TestConformanceMemcached(t *testing.T) {
	srv := memcachedtest.Start(t)
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		sum := sha256.Sum256([]byte(dir))
		args := backends.Args{"url": srv.Addr(), "prefix": "pl-" + hex.EncodeToString(sum[:8]), "lock_timeout": "5s"}
		if ttl > 0 {
			args["memcached_expire_time"] = max(time.Second, ttl.Round(time.Second)) // whole seconds
		}
		return Open(pluginPath("memcached"), args)
	}
	conformance.Run(t, conformance.Harness{
		Name: "memcached-plugin",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	}, conformance.LargeValueSize(1<<20)) // memcached's item limit (-I 2m in the tests)
}
