package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// Option configures Open.
type Option func(*config)

type config struct {
	name     string
	logger   *slog.Logger
	checksum []byte
	tempDir  string
}

// WithName sets the name the plugin is called by in errors and logs. The
// default is the executable's name without the regioncache-backend- prefix.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithLogger sends the plugin's logs and go-plugin's own to l instead of
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithChecksum pins the binary: every launch (the first and each restart)
// first checks that the executable's SHA-256 is sum, and refuses to run it
// otherwise with an error wrapping ErrChecksumMismatch. Plugins found in a
// plugin directory are pinned to the checksum in its manifest automatically.
func WithChecksum(sum []byte) Option {
	return func(c *config) { c.checksum = append([]byte(nil), sum...) }
}

// WithTempDir sets where OpenFile puts the temporary files it streams file
// values into (default os.TempDir()).
func WithTempDir(dir string) Option { return func(c *config) { c.tempDir = dir } }

// NameOf returns the backend name of a plugin executable path:
// "/x/regioncache-backend-bolt" gives "bolt". Names without the prefix are
// returned without their extension.
func NameOf(path string) string {
	base := filepath.Base(path)
	if runtime.GOOS == "windows" {
		base = strings.TrimSuffix(base, ".exe")
	}
	return strings.TrimPrefix(base, Prefix)
}

// Backend is a backend served by a plugin process. It implements every
// optional interface of package backends; Capabilities reports which ones
// the plugin really has, and backends.Has, backends.LockerOf and the
// region go by that. Its methods are safe for concurrent use.
type Backend struct {
	path   string
	args   backends.Args
	argsPB *structpb.Struct
	cfg    config

	caps backends.Capabilities
	ttl  time.Duration

	mu     sync.Mutex
	cur    *proc
	closed bool
	starts atomic.Int64
}

// proc is one running plugin process.
type proc struct {
	client *plugin.Client
	rpc    pb.BackendClient
	host   *os.File // write end of the host-liveness pipe; nil on Windows
	dead   atomic.Bool
	pid    int
}

func (p *proc) alive() bool { return !p.dead.Load() && !p.client.Exited() }

// kill stops the process (gracefully if it can) and forgets it.
func (p *proc) kill() {
	p.client.Kill()
	if p.host != nil {
		p.host.Close()
	}
	untrack(p)
}

// Open starts the plugin executable at path and opens its backend with args.
// The process runs until Close (or Cleanup); if it dies, the next call
// starts it again and reopens the backend with the same args (a backend that
// keeps its entries in process memory comes back empty).
//
// Errors: a binary that does not match WithChecksum wraps
// ErrChecksumMismatch; a plugin speaking no protocol version this host
// speaks wraps ErrProtocolVersion; the backend's own refusal of args is
// passed on (wrapping backends.ErrBadArgument when it does).
func Open(path string, args backends.Args, opts ...Option) (*Backend, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.name == "" {
		cfg.name = NameOf(path)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.name, err)
	}
	s, err := argsToStruct(args)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.name, err)
	}
	b := &Backend{path: abs, args: args.Clone(), argsPB: s, cfg: cfg}
	b.mu.Lock()
	defer b.mu.Unlock()
	p, resp, err := b.start()
	if err != nil {
		return nil, err
	}
	b.cur = p
	b.caps = backends.Capabilities(resp.Capabilities) &^ backends.CapKeepsValues
	b.ttl = time.Duration(resp.StorageTtlNanos)
	return b, nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// start launches a process and opens the backend in it. b.mu is held.
func (b *Backend) start() (*proc, *pb.OpenResponse, error) {
	name := b.cfg.name
	cmd := exec.Command(b.path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, hostFDEnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	host, err := attachHostPipe(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	var secure *plugin.SecureConfig
	if b.cfg.checksum != nil {
		secure = &plugin.SecureConfig{Checksum: b.cfg.checksum, Hash: newHash()}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: Handshake(),
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {pluginKey: &grpcPlugin{}},
		},
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           newHCLog(b.cfg.logger.With("plugin", name)),
	})
	p := &proc{client: client, host: host}
	fail := func(err error) (*proc, *pb.OpenResponse, error) {
		afterStart(cmd)
		p.kill()
		return nil, nil, err
	}
	rc, err := client.Client()
	afterStart(cmd)
	if err != nil {
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			got, _ := fileSHA256(b.path)
			err = fmt.Errorf("plugin %s: %w: %s has SHA-256 %x, but %x was pinned when it was installed; the binary changed since — reinstall it with 'regioncache plugin install' if the change is yours",
				name, ErrChecksumMismatch, b.path, got, b.cfg.checksum)
		case strings.Contains(err.Error(), "incompatible API version"):
			v := "an unknown version"
			if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
				v = "version " + m[1]
			}
			err = fmt.Errorf("plugin %s: %w: %s speaks plugin protocol %s, this host speaks version %d; rebuild the plugin against a regioncache release that speaks version %d (%v)",
				name, ErrProtocolVersion, b.path, v, ProtocolVersion, ProtocolVersion, err)
		default:
			err = fmt.Errorf("plugin %s: starting %s: %w", name, b.path, err)
		}
		return fail(err)
	}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	track(p)
	raw, err := rc.Dispense(pluginKey)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w", name, err))
	}
	p.rpc = raw.(pb.BackendClient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := p.rpc.Open(ctx, &pb.OpenRequest{Args: b.argsPB})
	if err != nil {
		return fail(fromStatus(nil, name, err, client.Exited()))
	}
	b.starts.Add(1)
	return p, resp, nil
}

// proc returns the running process, starting one if the last one died.
func (b *Backend) proc() (*proc, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("plugin %s: %w", b.cfg.name, backends.ErrClosed)
	}
	if b.cur != nil && b.cur.alive() {
		return b.cur, nil
	}
	if b.cur != nil {
		b.cfg.logger.Warn("plugin process exited; restarting it", "plugin", b.cfg.name, "path", b.path)
		b.cur.kill()
		b.cur = nil
	}
	p, _, err := b.start()
	if err != nil {
		return nil, err
	}
	b.cur = p
	return p, nil
}

// fail converts the error of a call to p.
func (b *Backend) fail(ctx context.Context, p *proc, err error) error {
	e := fromStatus(ctx, b.cfg.name, err, p.client.Exited())
	if errors.Is(e, ErrPluginExited) {
		p.dead.Store(true)
	}
	return e
}

// call runs fn against the running process and converts its error.
func (b *Backend) call(ctx context.Context, fn func(c pb.BackendClient) error) error {
	p, err := b.proc()
	if err != nil {
		return err
	}
	if err := fn(p.rpc); err != nil {
		return b.fail(ctx, p, err)
	}
	return nil
}

// Name returns the name the plugin goes by in errors and logs.
func (b *Backend) Name() string { return b.cfg.name }

// Capabilities implements backends.Capabler: exactly the capabilities of the
// plugin's backend, less keeps-values.
func (b *Backend) Capabilities() backends.Capabilities { return b.caps }

// Close closes the plugin's backend and stops its process. It is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	p := b.cur
	b.cur = nil
	if p == nil {
		return nil
	}
	var err error
	if p.alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, cerr := p.rpc.Close(ctx, &pb.Empty{})
		cancel()
		if cerr != nil {
			err = b.fail(nil, p, cerr)
		}
	}
	p.kill()
	return err
}

func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	var e backends.Entry
	err := b.call(ctx, func(c pb.BackendClient) error {
		r, err := c.Get(ctx, &pb.KeyRequest{Key: []byte(key)})
		if err != nil {
			return err
		}
		if !r.Found {
			return errNotFound
		}
		e, err = b.received(ctx, c, r)
		return err
	})
	return e, err
}

// errNotFound is how a miss travels inside call: as a status, so that it
// converts to backends.ErrNotFound.
var errNotFound = toStatus(backends.ErrNotFound)

// received completes a found GetResponse, fetching a streamed payload.
func (b *Backend) received(ctx context.Context, c pb.BackendClient, r *pb.GetResponse) (backends.Entry, error) {
	e := entryOf(r.Meta)
	if r.TransferId == 0 {
		e.Payload = payloadOf(r.Payload)
		return e, nil
	}
	st, err := c.Fetch(ctx, &pb.FetchRequest{TransferId: r.TransferId})
	if err != nil {
		return e, err
	}
	size := r.Size
	if size < 0 || size > 1<<40 {
		size = 0
	}
	buf := make([]byte, 0, size)
	for {
		ch, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return e, err
		}
		buf = append(buf, ch.Data...)
	}
	if int64(len(buf)) != r.Size {
		return e, fmt.Errorf("%w: plugin streamed %d bytes of a %d-byte value", ErrPluginExited, len(buf), r.Size)
	}
	e.Payload = buf
	return e, nil
}

// sendEntry sends one entry as SetFrames.
func sendEntry(send func(*pb.SetFrame) error, key string, e *backends.Entry) error {
	p := e.Payload
	f := &pb.SetFrame{Key: []byte(key), Meta: metaOf(e), Size: int64(len(p))}
	for {
		n := min(len(p), ChunkSize)
		f.Data, p = p[:n], p[n:]
		f.End = len(p) == 0
		if err := send(f); err != nil {
			return err
		}
		if f.End {
			return nil
		}
		f = &pb.SetFrame{}
	}
}

func (b *Backend) Set(ctx context.Context, key string, e backends.Entry) error {
	return b.call(ctx, func(c pb.BackendClient) error {
		if len(e.Payload) <= ChunkSize {
			_, err := c.Set(ctx, &pb.SetRequest{Key: []byte(key), Meta: metaOf(&e), Payload: e.Payload})
			return err
		}
		st, err := c.SetStream(ctx)
		if err != nil {
			return err
		}
		if err := sendEntry(st.Send, key, &e); err != nil && err != io.EOF {
			return err
		}
		_, err = st.CloseAndRecv()
		return err
	})
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	return b.call(ctx, func(c pb.BackendClient) error {
		_, err := c.Delete(ctx, &pb.KeyRequest{Key: []byte(key)})
		return err
	})
}

// batches splits keys into requests whose keys total at most ChunkSize bytes.
func batches(keys []string) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	size := 0
	for _, k := range keys {
		if len(cur) > 0 && size+len(k) > ChunkSize {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, []byte(k))
		size += len(k)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (b *Backend) unsupported(what string) error {
	return fmt.Errorf("plugin %s: %w: %s", b.cfg.name, backends.ErrUnsupported, what)
}

// GetMulti implements backends.MultiGetter (capability multi).
func (b *Backend) GetMulti(ctx context.Context, keys []string) ([]*backends.Entry, error) {
	if b.caps&backends.CapMulti == 0 {
		return nil, b.unsupported("multi-key operations")
	}
	out := make([]*backends.Entry, 0, len(keys))
	err := b.call(ctx, func(c pb.BackendClient) error {
		for _, batch := range batches(keys) {
			r, err := c.GetMulti(ctx, &pb.KeysRequest{Keys: batch})
			if err != nil {
				return err
			}
			if len(r.Entries) != len(batch) {
				return fmt.Errorf("%w: GetMulti answered %d entries for %d keys", backends.ErrUnsupported, len(r.Entries), len(batch))
			}
			for _, g := range r.Entries {
				if !g.Found {
					out = append(out, nil)
					continue
				}
				e, err := b.received(ctx, c, g)
				if err != nil {
					return err
				}
				out = append(out, &e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetMulti implements backends.MultiSetter (capability multi).
func (b *Backend) SetMulti(ctx context.Context, keys []string, entries []backends.Entry) error {
	if b.caps&backends.CapMulti == 0 {
		return b.unsupported("multi-key operations")
	}
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", backends.ErrBadArgument, len(keys), len(entries))
	}
	return b.call(ctx, func(c pb.BackendClient) error {
		st, err := c.SetMulti(ctx)
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := sendEntry(st.Send, k, &entries[i]); err != nil {
				if err == io.EOF {
					break // the server answered early: CloseAndRecv has its error
				}
				return err
			}
		}
		_, err = st.CloseAndRecv()
		return err
	})
}

// DeleteMulti implements backends.MultiDeleter (capability multi).
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if b.caps&backends.CapMulti == 0 {
		return b.unsupported("multi-key operations")
	}
	return b.call(ctx, func(c pb.BackendClient) error {
		for _, batch := range batches(keys) {
			if _, err := c.DeleteMulti(ctx, &pb.KeysRequest{Keys: batch}); err != nil {
				return err
			}
		}
		return nil
	})
}

// StorageTTL implements backends.StorageExpirer (capability storage-expiry).
func (b *Backend) StorageTTL() time.Duration { return b.ttl }

// EvictTag implements backends.TagEvicter (capability tags).
func (b *Backend) EvictTag(ctx context.Context, tag string) (int, error) {
	if b.caps&backends.CapTags == 0 {
		return 0, b.unsupported("tag eviction")
	}
	var n int
	err := b.call(ctx, func(c pb.BackendClient) error {
		r, err := c.EvictTag(ctx, &pb.TagRequest{Tag: []byte(tag)})
		if err != nil {
			return err
		}
		n = int(r.Count)
		return nil
	})
	return n, err
}

// errStop marks an error returned by List's fn, so that it reaches the
// caller as it is.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// List implements backends.Lister (capability list).
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	if b.caps&backends.CapList == 0 {
		return b.unsupported("listing")
	}
	var fnErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := b.call(ctx, func(c pb.BackendClient) error {
		st, err := c.List(ctx, &pb.Empty{})
		if err != nil {
			return err
		}
		for {
			in, err := st.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			e := entryOf(in.Meta)
			if err := fn(backends.EntryInfo{Key: string(in.Key), Size: in.Size, Created: e.Created, Version: e.Version, Tags: e.Tags}); err != nil {
				fnErr = err
				return nil
			}
		}
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// StorageStats implements backends.StatReporter (capability list).
func (b *Backend) StorageStats(ctx context.Context) (backends.Stats, error) {
	if b.caps&backends.CapList == 0 {
		return backends.Stats{}, b.unsupported("storage statistics")
	}
	var s backends.Stats
	err := b.call(ctx, func(c pb.BackendClient) error {
		r, err := c.StorageStats(ctx, &pb.Empty{})
		if err != nil {
			return err
		}
		s = backends.Stats{Entries: r.Entries, Bytes: r.Bytes}
		return nil
	})
	return s, err
}

// Locker implements backends.Locking (capability lock): the plugin's own
// lock. Lock waits in the plugin and honours ctx: cancelling it cancels the
// wait there. A handle taken before the plugin restarted reports
// lock.ErrLost on Unlock.
func (b *Backend) Locker() lock.Locker { return remoteLocker{b} }

type remoteLocker struct{ b *Backend }

type remoteHandle struct {
	b        *Backend
	p        *proc
	id       uint64
	released atomic.Bool
}

func (l remoteLocker) lock(ctx context.Context, key string, try bool) (lock.Handle, bool, error) {
	b := l.b
	if b.caps&backends.CapLock == 0 {
		return nil, false, b.unsupported("locks")
	}
	p, err := b.proc()
	if err != nil {
		return nil, false, err
	}
	var r *pb.LockResponse
	if try {
		r, err = p.rpc.TryLock(ctx, &pb.KeyRequest{Key: []byte(key)})
	} else {
		r, err = p.rpc.Lock(ctx, &pb.KeyRequest{Key: []byte(key)})
	}
	if err != nil {
		return nil, false, b.fail(ctx, p, err)
	}
	if !r.Acquired {
		return nil, false, nil
	}
	return &remoteHandle{b: b, p: p, id: r.Handle}, true, nil
}

func (l remoteLocker) Lock(ctx context.Context, key string) (lock.Handle, error) {
	h, _, err := l.lock(ctx, key, false)
	return h, err
}

func (l remoteLocker) TryLock(ctx context.Context, key string) (lock.Handle, bool, error) {
	return l.lock(ctx, key, true)
}

func (h *remoteHandle) Unlock() error {
	if h.released.Swap(true) {
		return fmt.Errorf("plugin %s: %w", h.b.cfg.name, lock.ErrReleased)
	}
	if !h.p.alive() {
		return fmt.Errorf("plugin %s: %w: the plugin process holding it exited", h.b.cfg.name, lock.ErrLost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.p.rpc.Unlock(ctx, &pb.UnlockRequest{Handle: h.id}); err != nil {
		err = h.b.fail(nil, h.p, err)
		if errors.Is(err, ErrPluginExited) {
			return fmt.Errorf("%w: %w", lock.ErrLost, err)
		}
		return err
	}
	return nil
}
