package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// The tests of this file run the hostile plugin (internal/hostile), which
// lies in the way its "behaviour" argument says on keys starting with
// "bad". Each asserts that the host answers with an error naming the
// plugin (wrapping the sentinel that says what happened), within the call's
// deadline, and that the next call works.

// hostileDeadline is the deadline of each hostile call; grace is how much
// later than its deadline a call may return (scheduling on a loaded
// machine) — a specification bound, not a performance measurement.
const (
	hostileDeadline = time.Second
	grace           = 2 * time.Second
)

type hostileCase struct {
	behaviour string
	plugin    string // default "hostile"
	opts      []Option
	want      error // the sentinel the error wraps; nil: any error
	call      func(ctx context.Context, b *Backend) error
	// streams: the lie is a stream of well-formed items until the
	// deadline, each received and dropped, so what the call allocates grows
	// with the machine's speed; the allocation bound does not apply.
	streams bool
}

func getBad(ctx context.Context, b *Backend) error {
	e, err := b.Get(ctx, "bad")
	if err == nil {
		return fmt.Errorf("Get returned %d bytes and no error", len(e.Payload))
	}
	return err
}

func openFileBad(ctx context.Context, b *Backend) error {
	f, _, err := b.OpenFile(ctx, "bad")
	if err == nil {
		f.Close()
		return errors.New("OpenFile returned a file and no error")
	}
	return err
}

// errFine is what a case returns when the plugin's lie did no harm, so
// that checkHostileError still sees an error naming the plugin.
var errFine = errors.New("plugin hostile: no harm done")

func hostileCases() []hostileCase {
	deadline := context.DeadlineExceeded
	return []hostileCase{
		{behaviour: "huge", want: backends.ErrBadResult, call: getBad},
		// With the size limit out of the way, the host reads what is sent
		// (3 MiB) and allocates for that, not for the 512 GiB announced.
		{behaviour: "huge", opts: []Option{WithMaxValueSize(1 << 40)}, want: backends.ErrBadResult, call: getBad},
		{behaviour: "endless", want: backends.ErrBadResult, call: getBad},
		{behaviour: "short", want: backends.ErrBadResult, call: getBad},
		{behaviour: "negative", want: backends.ErrBadResult, call: getBad},
		{behaviour: "drip", want: deadline, call: getBad},
		{behaviour: "silent", want: deadline, call: getBad},
		{behaviour: "silent", plugin: "hostile-v1", want: deadline, call: getBad}, // unary, not multiplexed
		{behaviour: "silent", plugin: "hostile-v2", want: deadline, call: getBad}, // the Calls stream, not the channel
		{behaviour: "oversized", call: getBad},
		{behaviour: "oversized", plugin: "hostile-v2", call: getBad},
		{behaviour: "garbage", call: getBad},
		{behaviour: "garbage", plugin: "hostile-v2", call: getBad},
		// Lies on the channel's framing (protocol version 3).
		{behaviour: "frame-huge", call: getBad},
		{behaviour: "frame-garbage", call: getBad},
		{behaviour: "frame-half", want: deadline, call: getBad},
		// A channel offered where nobody listens: the host uses the Calls
		// stream, and the honest answer to "bad" comes through.
		{behaviour: "", plugin: "hostile-badoffer", call: func(ctx context.Context, b *Backend) error {
			e, err := b.Get(ctx, "bad")
			if err != nil {
				return fmt.Errorf("Get after an offer nobody listens on: %w", err)
			}
			if string(e.Payload) != "bad but honest" {
				return fmt.Errorf("Get after an offer nobody listens on: %q", e.Payload)
			}
			return errFine
		}},
		// A plugin slow to offer its channel holds up no call past its
		// deadline; once it is open, calls go through.
		{behaviour: "", plugin: "hostile-slowoffer", want: deadline, call: func(ctx context.Context, b *Backend) error {
			_, err := b.Get(ctx, "good")
			if err == nil {
				return errors.New("Get returned before the channel was open")
			}
			return err
		}},
		{behaviour: "panic", want: ErrPluginExited, call: getBad},
		{behaviour: "multi-short", want: backends.ErrBadResult, call: func(ctx context.Context, b *Backend) error {
			_, err := b.GetMulti(ctx, []string{"a", "b", "c"})
			return err
		}},
		{behaviour: "multi-long", want: backends.ErrBadResult, call: func(ctx context.Context, b *Backend) error {
			_, err := b.GetMulti(ctx, []string{"a", "b", "c"})
			return err
		}},
		{behaviour: "unserved", want: backends.ErrUnsupported, call: func(ctx context.Context, b *Backend) error {
			_, err := backends.LockerOf(b).Lock(ctx, "k")
			return err
		}},
		{behaviour: "unserved", want: backends.ErrUnsupported, call: func(ctx context.Context, b *Backend) error {
			_, _, err := b.OpenFile(ctx, "bad")
			return err
		}},
		{behaviour: "unserved", want: backends.ErrUnsupported, call: func(ctx context.Context, b *Backend) error {
			return b.List(ctx, func(backends.EntryInfo) error { return nil })
		}},
		{behaviour: "unserved", want: backends.ErrUnsupported, call: func(ctx context.Context, b *Backend) error {
			_, err := b.StorageStats(ctx)
			return err
		}},
		{behaviour: "lie-counts", want: backends.ErrBadResult, call: func(ctx context.Context, b *Backend) error {
			_, err := b.EvictTag(ctx, "t")
			return err
		}},
		{behaviour: "lie-counts", want: backends.ErrBadResult, call: func(ctx context.Context, b *Backend) error {
			_, err := b.StorageStats(ctx)
			return err
		}},
		{behaviour: "list-endless", want: deadline, streams: true, call: func(ctx context.Context, b *Backend) error {
			return b.List(ctx, func(backends.EntryInfo) error { return nil })
		}},
		{behaviour: "file-huge", want: backends.ErrBadResult, call: openFileBad},
		{behaviour: "file-endless", want: backends.ErrBadResult, call: openFileBad},
		{behaviour: "file-drip", want: deadline, call: openFileBad},
	}
}

// TestHostilePlugin runs each lie through plugins.Open.
func TestHostilePlugin(t *testing.T) {
	for _, c := range hostileCases() {
		name := c.behaviour
		if c.plugin != "" {
			name += "/" + c.plugin
		}
		if len(c.opts) > 0 {
			name += "/limit-raised"
		}
		t.Run(name, func(t *testing.T) {
			plugin := c.plugin
			if plugin == "" {
				plugin = "hostile"
			}
			// A process of its own: a panic must not take other tests' down.
			b := openT(t, plugin, backends.Args{"behaviour": c.behaviour}, append(c.opts, quiet, WithTempDir(t.TempDir()), withOwnProcess())...)
			ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
			defer cancel()
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			err := c.call(ctx, b)
			took := time.Since(start)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			checkHostileError(t, err, c.want, took)
			// Allocation stays bounded by what was received (at most a few
			// MiB here), never by what was announced.
			if grew := int64(after.TotalAlloc) - int64(before.TotalAlloc); grew > 64<<20 && !c.streams {
				t.Errorf("the call allocated %d MiB", grew>>20)
			}
			checkNextCall(t, b)
		})
	}
}

func checkHostileError(t *testing.T, err, want error, took time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "plugin hostile") {
		t.Errorf("error %q does not name the plugin", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("error %q does not wrap %v", err, want)
	}
	if took > hostileDeadline+grace {
		t.Errorf("returned %v after the call, past its %v deadline", took, hostileDeadline)
	}
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
}

// checkNextCall checks that b works after a lie.
func checkNextCall(t *testing.T, b *Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Set(ctx, "good", backends.Entry{Payload: []byte("value")}); err != nil {
		t.Fatalf("the next call: Set: %v", err)
	}
	e, err := b.Get(ctx, "good")
	if err != nil || string(e.Payload) != "value" {
		t.Fatalf("the next call: Get = %q, %v", e.Payload, err)
	}
}

// TestHostileHugeSizeUnderMemoryLimit: a plugin announcing a 512 GiB value
// (and streaming 3 MiB of it) under a 256 MiB memory limit. Allocating the
// announced size up front — what the host once did — is "fatal error: out
// of memory", which kills the test binary; the heap after the call must
// hold no more than what was received.
func TestHostileHugeSizeUnderMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(256 << 20)
	defer debug.SetMemoryLimit(old)
	b := openT(t, "hostile", backends.Args{"behaviour": "huge"}, WithMaxValueSize(1<<40), quiet, withOwnProcess())
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
	defer cancel()
	start := time.Now()
	err := getBad(ctx, b)
	checkHostileError(t, err, backends.ErrBadResult, time.Since(start))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB for a reply of 3 MiB", grew>>20)
	}
	t.Logf("heap in use %d MiB -> %d MiB, heap reserved %d MiB -> %d MiB, total allocated during the call %d MiB",
		before.HeapInuse>>20, after.HeapInuse>>20, before.HeapSys>>20, after.HeapSys>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
	checkNextCall(t, b)
}

// TestHostileGarbageHandshake: a plugin that answers the handshake with
// garbage fails Open at once, naming the plugin.
func TestHostileGarbageHandshake(t *testing.T) {
	start := time.Now()
	_, err := Open(pluginPath("hostile-garbage"), nil, quiet)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "plugin hostile-garbage") {
		t.Fatalf("Open = %v, want an error naming plugin hostile-garbage", err)
	}
	if took > 10*time.Second {
		t.Errorf("Open took %v", took)
	}
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
}

// TestHostileThroughRegion runs lies through the region API.
func TestHostileThroughRegion(t *testing.T) {
	t.Setenv(EnvPath, binDir)
	for _, c := range []struct {
		behaviour string
		want      error
	}{
		{"huge", backends.ErrBadResult},
		{"endless", backends.ErrBadResult},
		{"silent", context.DeadlineExceeded},
		{"drip", context.DeadlineExceeded},
		{"oversized", nil},
		{"panic", ErrPluginExited},
	} {
		t.Run(c.behaviour, func(t *testing.T) {
			r, err := region.Open("hostile", backends.Args{"behaviour": c.behaviour})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
			defer cancel()
			start := time.Now()
			_, err = region.GetOrCreate(ctx, r, "bad", func(context.Context) ([]byte, error) {
				return []byte("created"), nil
			})
			checkHostileError(t, err, c.want, time.Since(start))
			ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			v, err := region.GetOrCreate(ctx2, r, "good", func(context.Context) ([]byte, error) {
				return []byte("created"), nil
			})
			if err != nil || string(v) != "created" {
				t.Fatalf("the next call: %q, %v", v, err)
			}
			if v, err := region.Get[[]byte](ctx2, r, "good"); err != nil || string(v) != "created" {
				t.Fatalf("the next call: Get = %q, %v", v, err)
			}
		})
	}
	t.Run("file-huge", func(t *testing.T) {
		r, err := region.Open("hostile", backends.Args{"behaviour": "file-huge"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
		defer cancel()
		start := time.Now()
		f, err := region.GetOrCreateFile(ctx, r, "bad", func(context.Context) (*os.File, error) {
			return nil, errors.New("the creator must not run: the read failed")
		})
		if f != nil {
			io.Copy(io.Discard, f)
			f.Close()
		}
		checkHostileError(t, err, backends.ErrBadResult, time.Since(start))
	})
}
