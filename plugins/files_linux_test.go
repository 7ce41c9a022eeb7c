//go:build linux

package plugins

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// byteCounter counts the payload bytes of gRPC messages the host sends to
// and receives from a plugin.
type byteCounter struct{ sent, received atomic.Int64 }

func (c *byteCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *byteCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch p := s.(type) {
	case *stats.OutPayload:
		c.sent.Add(int64(p.Length))
	case *stats.InPayload:
		c.received.Add(int64(p.Length))
	}
}
func (c *byteCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *byteCounter) HandleConn(context.Context, stats.ConnStats)                       {}

func (c *byteCounter) reset() { c.sent.Store(0); c.received.Store(0) }

func withCounter(c *byteCounter) Option {
	return func(cfg *config) { cfg.dialOpts = append(cfg.dialOpts, grpc.WithStatsHandler(c)) }
}

// ioWritten returns the bytes pid wrote (the "wchar" of /proc/pid/io:
// every write, to files and sockets alike).
func ioWritten(t *testing.T, pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		t.Logf("no /proc/%d/io: %v", pid, err)
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestFileDataOnceEachWay counts the bytes of a GetOrCreateFile miss
// through the rawfs plugin. A file the plugin cannot see crosses to the
// plugin once and nothing comes back (the caller's file is the host's own
// copy of the bytes it sent); a file the plugin sees at its path (host and
// plugin share the filesystem: same device, inode and size) does not cross
// at all: with MoveFile the plugin renames it into its store (writing
// nothing) and the caller reads the very same file; without, the plugin
// copies it (writing it once). A hit then reads the file back once.
func TestFileDataOnceEachWay(t *testing.T) {
	const size = 8 << 20
	content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	dir := t.TempDir()
	var c byteCounter
	b := openT(t, "rawfs", backends.Args{"base_dir": dir}, WithTempDir(t.TempDir()), withCounter(&c), withOwnProcess())
	r := region.New()
	if err := r.ConfigureBackend(b); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()

	check := func(name string, create func(context.Context) (*os.File, error), wantSent, wantWritten int64, opts ...region.CallOption) {
		t.Run(name, func(t *testing.T) {
			c.reset()
			pw, okw := ioWritten(t, b.pid())
			f, err := region.GetOrCreateFile(ctx, r, name, create, opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("the caller's file: %d bytes, %v", len(got), err)
			}
			sent, received := c.sent.Load(), c.received.Load()
			t.Logf("%d-byte file: %d bytes sent to the plugin, %d received", size, sent, received)
			if sent < wantSent || sent > wantSent+64<<10 {
				t.Errorf("%d bytes sent, want %d (+ at most 64 KiB of metadata)", sent, wantSent)
			}
			if received > 64<<10 {
				t.Errorf("%d bytes received from the plugin: the file came back", received)
			}
			if w, ok := ioWritten(t, b.pid()); ok && okw {
				t.Logf("the plugin wrote %d bytes (files and socket)", w-pw)
				if w-pw < wantWritten || w-pw > wantWritten+1<<20 {
					t.Errorf("the plugin wrote %d bytes, want %d (+ at most 1 MiB of socket traffic)", w-pw, wantWritten)
				}
			}
			// A hit reads the stored file back: once.
			c.reset()
			f, err = region.GetOrCreateFile(ctx, r, name, func(context.Context) (*os.File, error) {
				return nil, fmt.Errorf("a hit ran the creator")
			}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, _ = io.ReadAll(f)
			f.Close()
			if !bytes.Equal(got, content) {
				t.Fatalf("the hit: %d bytes", len(got))
			}
			if rec := c.received.Load(); rec < size || rec > size+64<<10 {
				t.Errorf("a hit received %d bytes, want the file once", rec)
			}
		})
	}
	src := t.TempDir()
	// A file the plugin cannot open (here: unnamed) is streamed: once.
	check("streamed", func(context.Context) (*os.File, error) {
		f, err := os.CreateTemp(src, "creator-*")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name())
		_, err = f.Write(content)
		return f, err
	}, size, size)
	// A file the plugin sees at its path is copied there: nothing is sent.
	check("copied", func(context.Context) (*os.File, error) {
		f, err := os.CreateTemp(src, "creator-*")
		if err != nil {
			return nil, err
		}
		_, err = f.Write(content)
		return f, err
	}, 0, size)
	check("moved", func(context.Context) (*os.File, error) {
		f, err := r.CreateTemp("creator-*")
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(f.Name(), dir) {
			t.Errorf("Region.CreateTemp made %s, not in the plugin's base_dir %s", f.Name(), dir)
		}
		_, err = f.Write(content)
		return f, err
	}, 0, 0, region.MoveFile())
	// A movable file from elsewhere on the same filesystem is handed over by
	// path too.
	check("moved-from-elsewhere", func(context.Context) (*os.File, error) {
		f, err := os.CreateTemp(src, "creator-*")
		if err != nil {
			return nil, err
		}
		_, err = f.Write(content)
		return f, err
	}, 0, 0, region.MoveFile())
}
