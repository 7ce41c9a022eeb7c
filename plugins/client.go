package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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
	"google.golang.org/grpc"
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
	maxValue int64
	dialOpts []grpc.DialOption // tests only: e.g. a stats handler
}

// maxMessage is the largest message the host accepts from a plugin.
const maxMessage = 4 << 20

// DefaultMaxValueSize is the largest value a plugin may hand the host in
// memory (Get, GetMulti) unless WithMaxValueSize says otherwise.
const DefaultMaxValueSize = 1 << 30

// WithMaxValueSize sets the largest value, in bytes, that the host accepts
// from the plugin in memory (default DefaultMaxValueSize); a larger one is
// an error wrapping backends.ErrBadResult, and no more than the bytes
// actually received (at most twice over, while growing) are ever
// allocated for it, whatever size the plugin announces. File values
// (OpenFile) go to disk and are bounded by the size the plugin announced.
func WithMaxValueSize(n int64) Option { return func(c *config) { c.maxValue = n } }

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
// optional interface of package backends and declines at run time
// (backends.ErrUnsupported, a nil Locker, a zero StorageTTL) those the
// plugin's backend lacks; Declares lists what it has. Its methods are safe for concurrent use.
//
// All Backends opened from one executable (with the same checksum pin and
// logger) share one plugin process, each being an instance in it; the
// process stops when the last of them is closed.
type Backend struct {
	g      *group
	args   backends.Args
	argsPB *structpb.Struct
	cfg    config
	keyed  *lock.Keyed // in front of the plugin's lock
	// notShared is set once the plugin could not see a file of the host:
	// file values are streamed from then on.
	notShared atomic.Bool

	caps declared
	ttl  time.Duration

	mu     sync.Mutex
	gen    uint64 // generation of the process id belongs to
	id     uint64 // instance id in that process
	closed bool
}

// proc is one running plugin process.
type proc struct {
	client  *plugin.Client
	rpc     pb.BackendClient
	host    *os.File // write end of the host-liveness pipe; nil on Windows
	dead    atomic.Bool
	pid     int
	gen     uint64
	version int // the negotiated protocol version

	muxMu   sync.Mutex
	mux     *mux          // nil until the first small call, or after it broke
	opening chan struct{} // closed when the carrier being opened is ready (or not)
	openErr error         // why the last opening failed
}

func (p *proc) alive() bool { return !p.dead.Load() && !p.client.Exited() }

// calls returns the process's carrier of small calls (a channel, or the
// Calls stream), opening it if needed. The opening runs apart from the
// callers, each of which waits for it only until its own context ends.
func (p *proc) calls(ctx context.Context) (*mux, error) {
	p.muxMu.Lock()
	if p.mux != nil && !p.mux.broken() {
		m := p.mux
		p.muxMu.Unlock()
		return m, nil
	}
	ready := p.opening
	if ready == nil {
		ready = make(chan struct{})
		p.opening = ready
		go p.open(ready)
	}
	p.muxMu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.muxMu.Lock()
	defer p.muxMu.Unlock()
	if p.mux != nil {
		return p.mux, nil // if it broke already, the call says so
	}
	return nil, p.openErr
}

// open opens a carrier and closes ready.
func (p *proc) open(ready chan struct{}) {
	var m *mux
	var err error
	if p.version >= 3 {
		// A channel where the plugin offers one; the Calls stream where it
		// cannot (another system, a full disk, a plugin that lies).
		m, err = openChannel(context.Background(), p.rpc)
	}
	if m == nil {
		m, err = newMux(p.rpc)
	}
	p.muxMu.Lock()
	p.mux, p.openErr, p.opening = m, err, nil
	if m != nil && p.dead.Load() {
		m.close() // killed while opening
	}
	p.muxMu.Unlock()
	close(ready)
}

// kill stops the process (gracefully if it can) and forgets it.
func (p *proc) kill() {
	p.dead.Store(true)
	p.muxMu.Lock()
	if p.mux != nil {
		p.mux.close()
	}
	p.muxMu.Unlock()
	p.client.Kill()
	if p.host != nil {
		p.host.Close()
	}
	untrack(p)
}

// group is the plugin process shared by the Backends opened from one
// executable, restarted when it dies.
type group struct {
	key  string
	path string
	cfg  config
	refs int // guarded by groupsMu

	mu     sync.Mutex
	cur    *proc
	gen    uint64
	starts int
}

var (
	groupsMu sync.Mutex
	groups   = make(map[string]*group)
)

func acquireGroup(path string, cfg *config) *group {
	key := fmt.Sprintf("%s\x00%x\x00%p\x00%d\x00%p", path, cfg.checksum, cfg.logger, cfg.maxValue, cfg.dialOpts)
	groupsMu.Lock()
	defer groupsMu.Unlock()
	g, ok := groups[key]
	if !ok {
		g = &group{key: key, path: path, cfg: *cfg}
		groups[key] = g
	}
	g.refs++
	return g
}

// release drops a reference; the last one stops the process.
func (g *group) release() {
	groupsMu.Lock()
	g.refs--
	last := g.refs == 0
	if last {
		delete(groups, g.key)
	}
	groupsMu.Unlock()
	if !last {
		return
	}
	g.mu.Lock()
	p := g.cur
	g.cur = nil
	g.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// proc returns the running process, starting one if there is none or the
// last one died.
func (g *group) proc() (*proc, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur != nil && g.cur.alive() {
		return g.cur, nil
	}
	if g.cur != nil {
		g.cfg.logger.Warn("plugin process exited; restarting it", "plugin", g.cfg.name, "path", g.path)
		g.cur.kill()
		g.cur = nil
	}
	p, err := launch(g.path, &g.cfg)
	if err != nil {
		return nil, err
	}
	g.gen++
	g.starts++
	p.gen = g.gen
	g.cur = p
	return p, nil
}

// Open starts the plugin executable at path (or joins the process already
// serving it) and opens a backend instance in it with args. If the process
// dies, the next call starts it again and reopens the instance with the
// same args (a backend that keeps its entries in process memory comes back
// empty).
//
// Errors: a binary that does not match WithChecksum wraps
// ErrChecksumMismatch; a plugin speaking no protocol version this host
// speaks wraps ErrProtocolVersion; the backend's own refusal of args is
// passed on (wrapping backends.ErrBadArgument when it does).
func Open(path string, args backends.Args, opts ...Option) (*Backend, error) {
	cfg := newConfig(path, opts)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.name, err)
	}
	s, err := argsToStruct(args)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.name, err)
	}
	b := &Backend{g: acquireGroup(abs, cfg), args: args.Clone(), argsPB: s, cfg: *cfg, keyed: lock.NewKeyed()}
	if _, _, err := b.conn(); err != nil {
		b.g.release()
		return nil, err
	}
	return b, nil
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// launch starts the plugin executable at path and connects to it, without
// opening a backend.
func launch(path string, cfg *config) (*proc, error) {
	name := cfg.name
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	if !isExecutable(fi) {
		return nil, fmt.Errorf("plugin %s: %w: %s is not an executable file", name, ErrNotPlugin, path)
	}
	cmd := exec.Command(path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, hostFDEnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	host, err := attachHostPipe(cmd)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	mute := new(atomic.Bool)
	var secure *plugin.SecureConfig
	if cfg.checksum != nil {
		secure = &plugin.SecureConfig{Checksum: cfg.checksum, Hash: newHash()}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: pluginSets(nil),
		// go-plugin lets messages be up to 2 GiB; a plugin's reply is held
		// to gRPC's default (no message of this protocol needs more).
		GRPCDialOptions:  append([]grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage))}, cfg.dialOpts...),
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           newHCLog(cfg.logger.With("plugin", name), mute),
	})
	p := &proc{client: client, host: host}
	rc, err := client.Client()
	afterStart(cmd)
	if err != nil {
		mute.Store(true) // the error says it all
		p.kill()
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			got, _ := fileSHA256(path)
			return nil, fmt.Errorf("plugin %s: %w: %s has SHA-256 %x, but %x was pinned when it was installed; the binary changed since — reinstall it with 'regioncache plugin install' if the change is yours",
				name, ErrChecksumMismatch, path, got, cfg.checksum)
		case strings.Contains(err.Error(), "incompatible API version"):
			v := "an unknown version"
			if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
				v = "version " + m[1]
			}
			return nil, fmt.Errorf("plugin %s: %w: %s speaks plugin protocol %s, this host speaks versions %d to %d; rebuild the plugin against a regioncache release that speaks one of them (%v)",
				name, ErrProtocolVersion, path, v, MinProtocolVersion, ProtocolVersion, err)
		case strings.Contains(err.Error(), "Unrecognized remote plugin message") || strings.Contains(err.Error(), "error parsing"):
			return nil, fmt.Errorf("plugin %s: %w: %s did not answer the plugin handshake (%v)", name, ErrNotPlugin, path, err)
		default:
			return nil, fmt.Errorf("plugin %s: starting %s: %w", name, path, err)
		}
	}
	if r := client.ReattachConfig(); r != nil {
		p.pid = r.Pid
	}
	p.version = client.NegotiatedVersion()
	track(p)
	raw, err := rc.Dispense(pluginKey)
	if err != nil {
		mute.Store(true)
		p.kill()
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	bc, ok := raw.(pb.BackendClient)
	if !ok {
		mute.Store(true)
		p.kill()
		return nil, fmt.Errorf("plugin %s: %w: dispensed %T", name, ErrProtocolVersion, raw)
	}
	p.rpc = bc
	return p, nil
}

// Probe starts the plugin executable at path, checks that it is a
// regioncache plugin speaking a protocol version this host speaks (and that
// it matches WithChecksum, if given), and stops it, without opening a
// backend.
func Probe(path string, opts ...Option) error {
	_, err := Describe(path, opts...)
	return err
}

// Info is what a plugin says about itself.
type Info struct {
	// Version is the plugin program's own version (plugins.WithVersion),
	// "" if it sets none or speaks protocol version 1.
	Version string `json:"version"`
	// Protocol is the plugin protocol version this host and the plugin
	// negotiated.
	Protocol int `json:"protocol"`
	// Protocols lists the protocol versions the plugin speaks (only
	// Protocol for a plugin of protocol version 1).
	Protocols []int `json:"protocols"`
}

// Describe starts the plugin executable at path as Probe does, asks it
// what it is, and stops it.
func Describe(path string, opts ...Option) (Info, error) {
	cfg := newConfig(path, opts)
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, fmt.Errorf("plugin %s: %w", cfg.name, err)
	}
	p, err := launch(abs, cfg)
	if err != nil {
		return Info{}, err
	}
	defer p.kill()
	in := Info{Protocol: p.version, Protocols: []int{p.version}}
	if p.version < 2 {
		return in, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := p.rpc.Info(ctx, &pb.Empty{})
	if err != nil {
		return in, fromStatus(ctx, cfg.name, err, p.client.Exited())
	}
	in.Version = strings.ToValidUTF8(r.Version, "\uFFFD")
	if len(in.Version) > 200 {
		in.Version = in.Version[:200] // a plugin's say, shown in a table
	}
	in.Protocols = in.Protocols[:0]
	for _, v := range r.Protocols[:min(len(r.Protocols), 64)] {
		in.Protocols = append(in.Protocols, int(v))
	}
	return in, nil
}

func newConfig(path string, opts []Option) *config {
	cfg := &config{}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.name == "" {
		cfg.name = NameOf(path)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.maxValue <= 0 {
		cfg.maxValue = DefaultMaxValueSize
	}
	return cfg
}

// conn returns the running process and this backend's instance in it,
// starting the process and (re)opening the instance as needed.
func (b *Backend) conn() (*proc, uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, 0, fmt.Errorf("plugin %s: %w", b.cfg.name, backends.ErrClosed)
	}
	p, err := b.g.proc()
	if err != nil {
		return nil, 0, err
	}
	if p.gen == b.gen {
		return p, b.id, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := p.rpc.Open(ctx, &pb.OpenRequest{Args: b.argsPB})
	if err != nil {
		return nil, 0, b.fail(context.Background(), p, err)
	}
	if b.gen == 0 {
		b.caps = declared(resp.Capabilities)
		b.ttl = time.Duration(resp.StorageTtlNanos)
	}
	b.gen, b.id = p.gen, resp.Instance
	return p, b.id, nil
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
func (b *Backend) call(ctx context.Context, fn func(c pb.BackendClient, id uint64) error) error {
	p, id, err := b.conn()
	if err != nil {
		return err
	}
	if err := fn(p.rpc, id); err != nil {
		return b.fail(ctx, p, err)
	}
	return nil
}

// Name returns the name the plugin goes by in errors and logs.
func (b *Backend) Name() string { return b.cfg.name }

// Declares lists the optional interfaces the plugin's backend has (e.g.
// "multi|lock|tags"), or "none". The Backend implements every optional
// interface of package backends and declines, as the contract says, those the
// plugin lacks: their methods return errors wrapping backends.ErrUnsupported
// and Locker returns nil.
func (b *Backend) Declares() string { return b.caps.String() }

// ProcessLocal implements backends.ProcessLocal as the plugin's backend
// declares it; a plugin that says nothing is shared.
func (b *Backend) ProcessLocal() bool { return b.caps.has(declProcessLocal) }

// ReadOnlyPayloads implements backends.ReadOnlyPayloads: every payload is a
// buffer of its own, decoded from the plugin's reply or assembled from its
// stream, which nothing changes afterwards.
func (b *Backend) ReadOnlyPayloads() bool { return true }

// Discards implements backends.Discarder as the plugin's backend declares it.
func (b *Backend) Discards() bool { return b.caps.has(declDiscards) }

// Close closes the plugin's backend instance, and stops the plugin process
// if no other Backend uses it. It is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.g.mu.Lock()
	p := b.g.cur
	b.g.mu.Unlock()
	var err error
	if p != nil && p.gen == b.gen && p.alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, cerr := p.rpc.Close(ctx, &pb.InstanceRequest{Instance: b.id})
		cancel()
		if cerr != nil {
			err = b.fail(context.Background(), p, cerr)
		}
	}
	b.mu.Unlock()
	b.g.release()
	return err
}

func (b *Backend) Get(ctx context.Context, key string) (backends.Entry, error) {
	var e backends.Entry
	p, id, err := b.conn()
	if err != nil {
		return e, err
	}
	var r *pb.GetResponse
	if p.version >= 2 {
		var rep *pb.Reply
		rep, err = b.muxCall(ctx, p, &pb.Call{Get: &pb.KeyRequest{Instance: id, Key: []byte(key)}})
		if err == nil {
			if r = rep.Get; r == nil {
				err = fmt.Errorf("%w: Get answered without an answer", backends.ErrBadResult)
			}
		}
	} else {
		r, err = p.rpc.Get(ctx, &pb.KeyRequest{Instance: id, Key: []byte(key)})
	}
	if err == nil {
		if !r.Found {
			err = errNotFound
		} else {
			e, err = b.received(ctx, p.rpc, r)
		}
	}
	if err != nil {
		return e, b.fail(ctx, p, err)
	}
	return e, nil
}

// muxCall runs a small call on p's Calls stream; the error is a status, as
// a unary call's would be.
func (b *Backend) muxCall(ctx context.Context, p *proc, c *pb.Call) (*pb.Reply, error) {
	m, err := p.calls(ctx)
	if err != nil {
		return nil, err
	}
	r, err := m.do(ctx, c)
	if err != nil {
		return nil, err
	}
	return r, statusOf(r)
}

// errNotFound is how a miss travels inside call: as a status, so that it
// converts to backends.ErrNotFound.
var errNotFound = toStatus(backends.ErrNotFound)

// received completes a found GetResponse, fetching a streamed payload.
// Nothing the plugin says is trusted: the announced size must be within
// WithMaxValueSize, the buffer grows with the bytes actually received (to
// at most twice them, never to the announced size up front), and a stream
// that sends more or less than it announced is an error.
func (b *Backend) received(ctx context.Context, c pb.BackendClient, r *pb.GetResponse) (backends.Entry, error) {
	e := entryOf(r.Meta)
	if r.TransferId == 0 {
		e.Payload = payloadOf(r.Payload)
		return e, nil
	}
	if r.Size < 0 || r.Size > b.cfg.maxValue {
		return e, fmt.Errorf("%w: a value of %d bytes announced (the limit is %d, see WithMaxValueSize)", backends.ErrBadResult, r.Size, b.cfg.maxValue)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if we stop reading early
	st, err := c.Fetch(ctx, &pb.FetchRequest{TransferId: r.TransferId})
	if err != nil {
		return e, err
	}
	var buf []byte
	for {
		ch, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return e, err
		}
		if int64(len(buf))+int64(len(ch.Data)) > r.Size {
			return e, fmt.Errorf("%w: the plugin streamed more than the %d bytes it announced", backends.ErrBadResult, r.Size)
		}
		if len(buf)+len(ch.Data) > cap(buf) {
			// Grow to twice what arrived, capped by the announced size.
			n := min(max(2*(len(buf)+len(ch.Data)), 64<<10), int(r.Size))
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		buf = append(buf, ch.Data...)
	}
	if int64(len(buf)) != r.Size {
		return e, fmt.Errorf("%w: the plugin streamed %d bytes of a %d-byte value", backends.ErrBadResult, len(buf), r.Size)
	}
	e.Payload = payloadOf(buf)
	return e, nil
}

// sendEntry sends one entry as SetFrames.
func sendEntry(send func(*pb.SetFrame) error, id uint64, key string, e *backends.Entry) error {
	p := e.Payload
	f := &pb.SetFrame{Instance: id, Key: []byte(key), Meta: metaOf(e), Size: int64(len(p))}
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
	return b.set(ctx, key, e, 0)
}

// set stores e, fenced by the plugin-side lock handle fence if it is not 0.
func (b *Backend) set(ctx context.Context, key string, e backends.Entry, fence uint64) error {
	p, id, err := b.conn()
	if err != nil {
		return err
	}
	if fence == 0 && p.version >= 2 && len(e.Payload) <= muxInline {
		_, err := b.muxCall(ctx, p, &pb.Call{Set: &pb.SetRequest{Instance: id, Key: []byte(key), Meta: metaOf(&e), Payload: e.Payload}})
		return b.fail(ctx, p, err)
	}
	return b.call(ctx, func(c pb.BackendClient, id uint64) error {
		if fence != 0 && len(e.Payload) <= ChunkSize {
			_, err := c.SetFenced(ctx, &pb.SetRequest{Instance: id, Key: []byte(key), Meta: metaOf(&e), Payload: e.Payload, FenceHandle: fence})
			return err
		}
		if len(e.Payload) <= ChunkSize {
			_, err := c.Set(ctx, &pb.SetRequest{Instance: id, Key: []byte(key), Meta: metaOf(&e), Payload: e.Payload})
			return err
		}
		st, err := c.SetStream(ctx)
		if err != nil {
			return err
		}
		send := st.Send
		if fence != 0 {
			send = func(f *pb.SetFrame) error {
				if f.Key != nil {
					f.FenceHandle = fence
				}
				return st.Send(f)
			}
		}
		if err := sendEntry(send, id, key, &e); err != nil && err != io.EOF {
			return err
		}
		_, err = st.CloseAndRecv()
		return err
	})
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	p, id, err := b.conn()
	if err != nil {
		return err
	}
	if p.version >= 2 {
		_, err := b.muxCall(ctx, p, &pb.Call{Delete: &pb.KeyRequest{Instance: id, Key: []byte(key)}})
		return b.fail(ctx, p, err)
	}
	return b.call(ctx, func(c pb.BackendClient, id uint64) error {
		_, err := c.Delete(ctx, &pb.KeyRequest{Instance: id, Key: []byte(key)})
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
	if !b.caps.has(declMulti) {
		return nil, b.unsupported("multi-key operations")
	}
	out := make([]*backends.Entry, 0, len(keys))
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		for _, batch := range batches(keys) {
			r, err := c.GetMulti(ctx, &pb.KeysRequest{Instance: id, Keys: batch})
			if err != nil {
				return err
			}
			if len(r.Entries) != len(batch) {
				return fmt.Errorf("%w: GetMulti answered %d entries for %d keys", backends.ErrBadResult, len(r.Entries), len(batch))
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
	if !b.caps.has(declMulti) {
		return b.unsupported("multi-key operations")
	}
	if len(keys) != len(entries) {
		return fmt.Errorf("%w: SetMulti got %d keys and %d entries", backends.ErrBadArgument, len(keys), len(entries))
	}
	return b.call(ctx, func(c pb.BackendClient, id uint64) error {
		st, err := c.SetMulti(ctx)
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := sendEntry(st.Send, id, k, &entries[i]); err != nil {
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
	if !b.caps.has(declMulti) {
		return b.unsupported("multi-key operations")
	}
	return b.call(ctx, func(c pb.BackendClient, id uint64) error {
		for _, batch := range batches(keys) {
			if _, err := c.DeleteMulti(ctx, &pb.KeysRequest{Instance: id, Keys: batch}); err != nil {
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
	if !b.caps.has(declTags) {
		return 0, b.unsupported("tag eviction")
	}
	var n int
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		r, err := c.EvictTag(ctx, &pb.TagRequest{Instance: id, Tag: []byte(tag)})
		if err != nil {
			return err
		}
		if r.Count < 0 {
			return fmt.Errorf("%w: EvictTag answered a count of %d", backends.ErrBadResult, r.Count)
		}
		n = int(min(r.Count, int64(math.MaxInt)))
		return nil
	})
	return n, err
}

// List implements backends.Lister (capability list).
func (b *Backend) List(ctx context.Context, fn func(backends.EntryInfo) error) error {
	if !b.caps.has(declList) {
		return b.unsupported("listing")
	}
	var fnErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		st, err := c.List(ctx, &pb.InstanceRequest{Instance: id})
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
	if !b.caps.has(declStats) {
		return backends.Stats{}, b.unsupported("storage statistics")
	}
	var s backends.Stats
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		r, err := c.StorageStats(ctx, &pb.InstanceRequest{Instance: id})
		if err != nil {
			return err
		}
		if r.Entries < 0 || r.Bytes < 0 {
			return fmt.Errorf("%w: StorageStats answered %d entries of %d bytes", backends.ErrBadResult, r.Entries, r.Bytes)
		}
		s = backends.Stats{Entries: r.Entries, Bytes: r.Bytes}
		return nil
	})
	return s, err
}

// Locker implements backends.Locking (capability lock): the plugin's own
// lock, behind an in-process keyed mutex, so that the goroutines of this
// process waiting for one key make one pending Lock call to the plugin, not
// one each (and TryLock of a key held in this process answers without a
// call). Lock waits in the plugin and honours ctx: cancelling it cancels
// the wait there. The context the plugin's backend took the lock with ends
// when ctx ends (not when the call returns), so a lock bound to its context
// keeps that meaning. A handle taken before the plugin restarted reports
// lock.ErrLost on Unlock, and SetFenced with it stores nothing.
// A plugin whose backend has no lock gives nil.
func (b *Backend) Locker() lock.Locker {
	if !b.caps.has(declLock) {
		return nil
	}
	return remoteLocker{b}
}

type remoteLocker struct{ b *Backend }

// lockIDs numbers the lock handles this host asks plugins for.
var lockIDs atomic.Uint64

type remoteHandle struct {
	b        *Backend
	p        *proc
	id       uint64
	key      string
	local    lock.Handle // the in-process keyed mutex
	released atomic.Bool
	stop     func() bool // stops forwarding the end of the Lock context
}

func (l remoteLocker) lock(ctx context.Context, key string, try bool) (lock.Handle, bool, error) {
	b := l.b
	if !b.caps.has(declLock) {
		return nil, false, b.unsupported("locks")
	}
	var local lock.Handle
	if try {
		h, ok, err := b.keyed.TryLock(ctx, key)
		if err != nil || !ok {
			return nil, false, err
		}
		local = h
	} else {
		h, err := b.keyed.Lock(ctx, key)
		if err != nil {
			return nil, false, fmt.Errorf("plugin %s: %w", b.cfg.name, err)
		}
		local = h
	}
	h, ok, err := l.remote(ctx, key, try)
	if err != nil || !ok {
		_ = local.Unlock()
		return nil, false, err
	}
	h.local = local
	return h, true, nil
}

// remote takes key's lock in the plugin.
func (l remoteLocker) remote(ctx context.Context, key string, try bool) (*remoteHandle, bool, error) {
	b := l.b
	p, id, err := b.conn()
	if err != nil {
		return nil, false, err
	}
	hid := lockIDs.Add(1)
	req := &pb.KeyRequest{Instance: id, Key: []byte(key), Handle: hid}
	var r *pb.LockResponse
	if try {
		r, err = p.rpc.TryLock(ctx, req)
	} else {
		r, err = p.rpc.Lock(ctx, req)
	}
	if err != nil {
		if ctx.Err() != nil && p.alive() {
			// The grant may have been on its way when the call was
			// cancelled: tell the plugin to release it if it comes.
			go func() {
				c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, _ = p.rpc.Unlock(c, &pb.UnlockRequest{Handle: hid})
			}()
		}
		return nil, false, b.fail(ctx, p, err)
	}
	if !r.Acquired {
		return nil, false, nil
	}
	h := &remoteHandle{b: b, p: p, id: r.Handle, key: key}
	h.stop = context.AfterFunc(ctx, func() {
		if !h.released.Load() && p.alive() {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = p.rpc.LockContextDone(c, &pb.UnlockRequest{Handle: h.id})
		}
	})
	return h, true, nil
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
	defer h.local.Unlock()
	h.stop()
	if !h.p.alive() {
		return fmt.Errorf("plugin %s: %w: the plugin process holding it exited", h.b.cfg.name, lock.ErrLost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.p.rpc.Unlock(ctx, &pb.UnlockRequest{Handle: h.id}); err != nil {
		err = h.b.fail(context.Background(), h.p, err)
		if errors.Is(err, ErrPluginExited) {
			return fmt.Errorf("%w: %w", lock.ErrLost, err)
		}
		return err
	}
	return nil
}

// SetFenced implements backends.FencedSetter: e is stored only while h, a
// handle of this Backend's Locker, still holds key's lock in the plugin. A
// handle taken before the plugin process restarted holds nothing any more:
// nothing is stored and the error wraps lock.ErrLost. The plugin stores
// with its backend's own SetFenced when it has one (so a lease that ran out
// is caught by the store itself), else it checks that it still holds the
// handle and stores. A handle of another locker, or a plugin speaking
// protocol version 1, gives an error wrapping backends.ErrUnsupported (the
// caller then stores with Set).
func (b *Backend) SetFenced(ctx context.Context, key string, e backends.Entry, h lock.Handle) error {
	rh, ok := h.(*remoteHandle)
	if !ok || rh.b != b || rh.key != key {
		return b.unsupported("fenced store with a handle that is not this plugin's lock of that key")
	}
	if rh.released.Load() {
		return fmt.Errorf("plugin %s: %w: the lock was released before the store", b.cfg.name, lock.ErrLost)
	}
	p, _, err := b.conn()
	if err != nil {
		return err
	}
	if p != rh.p || !p.alive() {
		return fmt.Errorf("plugin %s: %w: the plugin process that held the lock exited", b.cfg.name, lock.ErrLost)
	}
	if p.version < 2 {
		return b.unsupported("fenced stores (the plugin speaks protocol version 1)")
	}
	return b.set(ctx, key, e, rh.id)
}
