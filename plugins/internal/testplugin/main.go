// Command testplugin is the plugin binary of this module's tests. It serves
// the in-tree backend named by its own executable name, so that one build
// copied to regioncache-backend-memory, regioncache-backend-filesystem, ...
// serves each of them; other names serve memory. Two names are special:
//
//	regioncache-backend-v99     speaks only plugin protocol version 99
//	regioncache-backend-broken  a memory backend that drops values larger
//	                            than 1 MiB and ignores deletes (brokentest's
//	                            DropsLargeValues and IgnoresDelete)
//	regioncache-backend-fault-X a memory backend wrapped by the brokentest
//	                            wrapper X (arguments dir and ttl)
//	regioncache-backend-locks   a memory backend whose instances share one
//	                            keyed lock, counting the Lock calls waiting
//	                            in it: Get of "\x00lock-calls" answers
//	                            "<waiting now> <most ever waiting> <total>"
//
// Every plugin says it is version "testplugin-1.2.3" (plugins.WithVersion).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/filesystem"
	_ "github.com/regioncache/regioncache/backends/memcached"
	"github.com/regioncache/regioncache/backends/memory"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	_ "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/conformance/brokentest"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins"
)

func main() {
	name := plugins.NameOf(os.Args[0])
	profile()
	switch name {
	case "v99":
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  plugins.Handshake(),
			VersionedPlugins: map[int]plugin.PluginSet{99: {"backend": v99{}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
		return
	case "broken":
		plugins.Serve(func(args backends.Args) (backends.Backend, error) {
			b, err := backends.Open("memory", args)
			if err != nil {
				return nil, err
			}
			return brokentest.IgnoresDelete(brokentest.DropsLargeValues(b)), nil
		}, version)
		return
	case "locks":
		shared := &countingLocker{k: lock.NewKeyed()}
		plugins.Serve(func(args backends.Args) (backends.Backend, error) {
			m, err := memory.Open(args)
			if err != nil {
				return nil, err
			}
			return &lockCounting{Backend: m, l: shared}, nil
		}, version)
		return
	}
	if fault, ok := strings.CutPrefix(name, "fault-"); ok {
		serveFault(fault)
		return
	}
	f, ok := backends.Lookup(name)
	if !ok {
		f, _ = backends.Lookup("memory") // installed under another name
	}
	plugins.Serve(func(args backends.Args) (backends.Backend, error) {
		// Exercised by the tests: logs reach the host's slog, and stdout
		// after the handshake is ignored.
		slog.Debug("testplugin: opening", "backend", name, "args", len(args))
		fmt.Println("stdout noise that the host must ignore")
		return f(args)
	}, version)
}

// version is the plugin's own version, which hosts list.
var version = plugins.WithVersion("testplugin-1.2.3")

// serveFault serves a memory backend wrapped by the brokentest wrapper
// called name, opened by its Opener: instances opened on one dir share a
// keyed lock.
func serveFault(name string) {
	fault, ok := brokentest.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "testplugin: no brokentest wrapper %q\n", name)
		os.Exit(2)
	}
	open := fault.Opener()
	plugins.Serve(func(args backends.Args) (backends.Backend, error) {
		if err := args.Only("dir", "ttl"); err != nil {
			return nil, err
		}
		dir, err := args.String("dir", "")
		if err != nil {
			return nil, err
		}
		ttl, err := args.Duration("ttl", 0)
		if err != nil {
			return nil, err
		}
		return open(dir, ttl)
	}, version)
}

// countingLocker is a keyed lock that counts the Lock calls waiting in it.
type countingLocker struct {
	k                    *lock.Keyed
	waiting, most, total atomic.Int64
}

func (c *countingLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	c.total.Add(1)
	n := c.waiting.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	defer c.waiting.Add(-1)
	return c.k.Lock(ctx, key)
}

func (c *countingLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return c.k.TryLock(ctx, key)
}

// lockCounting is a memory backend with a countingLocker.
type lockCounting struct {
	*memory.Backend
	l *countingLocker
}

func (b *lockCounting) Locker() lock.Locker { return b.l }

func (b *lockCounting) Get(ctx context.Context, key string) (backends.Entry, error) {
	if key == "\x00lock-calls" {
		return backends.Entry{Payload: fmt.Appendf(nil, "%d %d %d", b.l.waiting.Load(), b.l.most.Load(), b.l.total.Load())}, nil
	}
	return b.Backend.Get(ctx, key)
}

// v99 is a plugin of a protocol version no host speaks.
type v99 struct{ plugin.NetRPCUnsupportedPlugin }

func (v99) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }
func (v99) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

// profile writes a CPU profile of the plugin process to
// $REGIONCACHE_TESTPLUGIN_CPUPROFILE (with the process id appended) for
// the first $REGIONCACHE_TESTPLUGIN_CPUPROFILE_SECONDS seconds, so that
// benchmarks can profile the plugin side too.
func profile() {
	path := os.Getenv("REGIONCACHE_TESTPLUGIN_CPUPROFILE")
	if path == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("REGIONCACHE_TESTPLUGIN_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 10
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	time.AfterFunc(time.Duration(secs)*time.Second, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}
