package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

func openT(t *testing.T, name string, args backends.Args, opts ...Option) *Backend {
	t.Helper()
	b, err := Open(pluginPath(name), args, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRoundTripAndCapabilities(t *testing.T) {
	ctx := context.Background()
	b := openT(t, "memory", backends.Args{"copy_values": true})
	if got, want := b.Declares(), "multi|tags|list|stats|process-local"; got != want {
		t.Errorf("Declares() = %q, want %q", got, want)
	}
	if backends.LockerOf(b) != nil || backends.KeepsValues(b) || backends.IsShared(b) {
		t.Error("the memory plugin must not offer locks or keeps-values, and is process-local")
	}
	if _, _, err := b.OpenFile(ctx, "k"); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("OpenFile on the memory plugin = %v, want ErrUnsupported", err)
	}
	created := time.Unix(1700000000, 123456789)
	want := backends.Entry{Payload: []byte("v\x00\xff"), Created: created, Version: 7, Tags: []string{"a", "\xff"}}
	if err := b.Set(ctx, "k\x00/../\xff", want); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "k\x00/../\xff")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Payload, want.Payload) || !got.Created.Equal(created) || got.Version != 7 || strings.Join(got.Tags, ",") != "a,\xff" {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	if _, err := b.Get(ctx, "absent"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get(absent) = %v, want ErrNotFound", err)
	}
	if _, _, err := b.OpenFile(ctx, "k"); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("OpenFile on a plugin without files = %v, want ErrUnsupported", err)
	}
}

// TestLargeValuesAreChunked moves values around gRPC's 4 MiB message limit
// (which this package leaves at its default) through Set/Get, SetMulti and
// GetMulti.
func TestLargeValuesAreChunked(t *testing.T) {
	ctx := context.Background()
	b := openT(t, "memory", backends.Args{"copy_values": true})
	sizes := []int{0, ChunkSize - 1, ChunkSize, ChunkSize + 1, 5 << 20, 9<<20 + 3}
	var keys []string
	var entries []backends.Entry
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(j*31 + i)
		}
		k := "k" + string(rune('a'+i))
		if err := b.Set(ctx, k, backends.Entry{Payload: p}); err != nil {
			t.Fatalf("Set %d bytes: %v", n, err)
		}
		got, err := b.Get(ctx, k)
		if err != nil || !bytes.Equal(got.Payload, p) {
			t.Fatalf("Get %d bytes: %v (got %d bytes)", n, err, len(got.Payload))
		}
		keys = append(keys, "m"+k)
		entries = append(entries, backends.Entry{Payload: p, Version: i})
	}
	if err := b.SetMulti(ctx, keys, entries); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetMulti(ctx, append(keys, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if got[i] == nil || !bytes.Equal(got[i].Payload, entries[i].Payload) || got[i].Version != i {
			t.Errorf("GetMulti[%d] wrong", i)
		}
	}
	if got[len(keys)] != nil {
		t.Error("GetMulti of an absent key was not nil")
	}
}

func TestArgsReachPlugin(t *testing.T) {
	ctx := context.Background()
	b := openT(t, "memory", backends.Args{"copy_values": "true", "max_entries": 2})
	for _, k := range []string{"a", "b", "c"} {
		if err := b.Set(ctx, k, backends.Entry{Payload: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Get(ctx, "a"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("max_entries=2 did not reach the plugin: Get(a) = %v", err)
	}
	_, err := Open(pluginPath("memory"), backends.Args{"max_entrys": 2})
	if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), "max_entrys") || !strings.Contains(err.Error(), "plugin memory") {
		t.Errorf("a misspelt argument: %v, want ErrBadArgument naming it and the plugin", err)
	}
	_, err = Open(pluginPath("memory"), backends.Args{"x": struct{}{}})
	if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), "x:") {
		t.Errorf("an argument that cannot be sent: %v", err)
	}
}

func TestUnknownProtocolVersion(t *testing.T) {
	_, err := Open(pluginPath("v99"), nil)
	if !errors.Is(err, ErrProtocolVersion) {
		t.Fatalf("Open(v99) = %v, want ErrProtocolVersion", err)
	}
	for _, s := range []string{"plugin v99", "version 99", fmt.Sprintf("speaks versions %d to %d", MinProtocolVersion, ProtocolVersion)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if err := Probe(pluginPath("v99")); !errors.Is(err, ErrProtocolVersion) {
		t.Errorf("Probe(v99) = %v", err)
	}
	if err := Probe(pluginPath("memory")); err != nil {
		t.Errorf("Probe(memory) = %v", err)
	}
}

// capture is a slog handler that keeps records (with the attributes of
// With folded in).
type capture struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

func newCapture() *capture { return &capture{mu: new(sync.Mutex), recs: new([]slog.Record)} }

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(c.attrs...)
	c.mu.Lock()
	*c.recs = append(*c.recs, r)
	c.mu.Unlock()
	return nil
}
func (c *capture) WithAttrs(as []slog.Attr) slog.Handler {
	d := *c
	d.attrs = append(append([]slog.Attr(nil), c.attrs...), as...)
	return &d
}
func (c *capture) WithGroup(string) slog.Handler { return c }

func (c *capture) find(msg string) (slog.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range *c.recs {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

func TestPluginLogsReachHostSlog(t *testing.T) {
	c := newCapture()
	b := openT(t, "memory", nil, WithLogger(slog.New(c)))
	// Logging is asynchronous (the plugin's stderr is read by a goroutine).
	var rec slog.Record
	ok := false
	for i := 0; i < 200 && !ok; i++ {
		rec, ok = c.find("testplugin: opening")
		if !ok {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("the plugin's slog.Debug never reached the host's logger")
	}
	if rec.Level != slog.LevelDebug {
		t.Errorf("level %v, want DEBUG", rec.Level)
	}
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if attrs["backend"] != "memory" || attrs["plugin"] != "memory" {
		t.Errorf("attributes %v, want backend=memory and plugin=memory", attrs)
	}
	// The plugin printed to stdout after the handshake; calls still work.
	if err := b.Set(context.Background(), "k", backends.Entry{Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryAndInstall(t *testing.T) {
	ctx := context.Background()
	dev, inst := t.TempDir(), t.TempDir()
	t.Setenv(EnvPath, dev+string(os.PathListSeparator)+inst)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // keep DefaultDir away from the user's
	t.Setenv("HOME", t.TempDir())
	if err := copyFile(pluginPath("memory"), filepath.Join(dev, exe(Prefix+"devmem"))); err != nil {
		t.Fatal(err)
	}
	p, err := Install(pluginPath("memory"), inst, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Pinned() || p.Path != filepath.Join(inst, exe(Prefix+"pinned")) {
		t.Errorf("Install = %+v", p)
	}
	names := strings.Join(backends.Names(), ",")
	if !strings.Contains(names, "devmem") || !strings.Contains(names, "pinned") {
		t.Errorf("backends.Names() = %s, want devmem and pinned from %s", names, EnvPath)
	}
	for _, n := range []string{"devmem", "pinned"} {
		b, err := backends.Open(n, backends.Args{"copy_values": true})
		if err != nil {
			t.Fatalf("backends.Open(%s): %v", n, err)
		}
		if err := b.Set(ctx, "k", backends.Entry{Payload: []byte("v")}); err != nil {
			t.Error(err)
		}
		b.Close()
	}
	vr, err := Verify()
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]VerifyStatus{}
	for _, r := range vr {
		st[r.Name] = r.Status
	}
	if st["devmem"] != VerifyUnpinned || st["pinned"] != VerifyOK {
		t.Errorf("Verify = %v", st)
	}

	// Tamper with the installed binary: it must be refused at launch.
	f, err := os.OpenFile(p.Path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	_, err = backends.Open("pinned", nil)
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "plugin pinned") || !strings.Contains(err.Error(), "changed") {
		t.Errorf("opening a tampered plugin: %v, want ErrChecksumMismatch naming it", err)
	}
	vr, _ = Verify(inst)
	if len(vr) != 1 || vr[0].Status != VerifyChanged || !errors.Is(vr[0].Err, ErrChecksumMismatch) {
		t.Errorf("Verify after tampering = %+v", vr)
	}
	// Reinstalling pins the new binary.
	if _, err := Install(pluginPath("memory"), inst, "pinned"); err != nil {
		t.Fatal(err)
	}
	if b, err := backends.Open("pinned", nil); err != nil {
		t.Errorf("after reinstalling: %v", err)
	} else {
		b.Close()
	}
	// Install refuses what is not a plugin of this protocol.
	if _, err := Install(pluginPath("v99"), inst, ""); !errors.Is(err, ErrProtocolVersion) {
		t.Errorf("Install(v99) = %v", err)
	}
	if _, err := Install(pluginPath("memory"), inst, "../evil"); !errors.Is(err, backends.ErrBadArgument) {
		t.Errorf("Install with a bad name = %v", err)
	}
}
