package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// Serve serves the backend that f opens as a regioncache plugin. It is a
// plugin program's whole main:
//
//	func main() { plugins.Serve(mybackend.Open) }
//
// The host calls f once, with the arguments the backend was opened with (see
// docs/plugins.md for how argument types arrive: numbers as float64,
// durations as strings; backends.Args accessors accept both). Serve makes a
// logger whose records reach the host's slog the default slog logger, and
// returns only when the host stops the plugin (or exits or dies), in which
// case it exits the process. Run by hand, without a host, it prints a
// message saying so and exits with status 1.
//
// In a plugin process, backends.Open does not find other plugins by name
// (a plugin on REGIONCACHE_PLUGIN_PATH would otherwise find itself).
func Serve(f backends.Factory, opts ...ServeOption) {
	var sc serveConfig
	for _, o := range opts {
		o(&sc)
	}
	serving.Store(true)
	slog.SetDefault(pluginLogger(os.Stderr))
	watchHost()
	srv := newServer(f)
	srv.version = sc.version
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: pluginSets(srv),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
	os.Exit(0)
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct{ version string }

// WithVersion sets the plugin program's own version (for example its
// release, "v1.4.2"), which hosts show: 'regioncache plugin list' and
// Describe report it.
func WithVersion(v string) ServeOption { return func(c *serveConfig) { c.version = v } }

// transferTTL is how long a large payload announced by Get waits for the
// host's Fetch before it is dropped.
const transferTTL = time.Minute

type server struct {
	pb.UnimplementedBackendServer
	factory backends.Factory
	version string // the plugin program's own version

	mu        sync.Mutex
	instances map[uint64]backends.Backend

	nextID    atomic.Uint64
	tmu       sync.Mutex
	transfers map[uint64][]byte
	handles   map[uint64]heldLock
	abandoned map[uint64]bool // handles the host unlocked before they were granted
}

// heldLock is a lock held for the host, with the cancel function of the
// context it was taken with.
type heldLock struct {
	h        lock.Handle
	cancel   context.CancelFunc
	instance uint64
	key      string
}

func newServer(f backends.Factory) *server {
	return &server{factory: f, instances: make(map[uint64]backends.Backend),
		transfers: make(map[uint64][]byte), handles: make(map[uint64]heldLock), abandoned: make(map[uint64]bool)}
}

func (s *server) backend(id uint64) (backends.Backend, error) {
	s.mu.Lock()
	b, ok := s.instances[id]
	s.mu.Unlock()
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: instance %d is closed or was never opened", backends.ErrClosed, id))
	}
	return b, nil
}

// optional returns the backend as T when it has that optional interface.
func optional[T any](s *server, id uint64, what string) (T, error) {
	var zero T
	b, err := s.backend(id)
	if err != nil {
		return zero, err
	}
	t, ok := b.(T)
	if !ok {
		return zero, toStatus(fmt.Errorf("%w: %s", backends.ErrUnsupported, what))
	}
	return t, nil
}

func (s *server) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	if s.factory == nil {
		return nil, toStatus(fmt.Errorf("%w: plugins.Serve was given a nil factory", backends.ErrUnsupported))
	}
	b, err := s.factory(structToArgs(req.Args))
	if err != nil {
		return nil, toStatus(err)
	}
	id := s.nextID.Add(1)
	s.mu.Lock()
	s.instances[id] = b
	s.mu.Unlock()
	return &pb.OpenResponse{Instance: id, Capabilities: uint32(declarationsOf(b)), StorageTtlNanos: int64(backends.StorageTTL(b))}, nil
}

func (s *server) Close(ctx context.Context, req *pb.InstanceRequest) (*pb.Empty, error) {
	s.mu.Lock()
	b, ok := s.instances[req.Instance]
	delete(s.instances, req.Instance)
	s.mu.Unlock()
	if !ok {
		return &pb.Empty{}, nil // Close is idempotent
	}
	return &pb.Empty{}, toStatus(b.Close())
}

// answer turns a stored entry into a GetResponse: the payload inline if
// inline allows and it fits in a chunk, else a transfer for Fetch.
func (s *server) answer(e *backends.Entry, inline bool) *pb.GetResponse {
	r := &pb.GetResponse{Found: true, Meta: metaOf(e), Size: int64(len(e.Payload))}
	if inline && len(e.Payload) <= ChunkSize {
		r.Payload = e.Payload
		return r
	}
	id := s.nextID.Add(1)
	s.tmu.Lock()
	s.transfers[id] = e.Payload
	s.tmu.Unlock()
	time.AfterFunc(transferTTL, func() {
		s.tmu.Lock()
		delete(s.transfers, id)
		s.tmu.Unlock()
	})
	r.TransferId = id
	return r
}

func (s *server) Get(ctx context.Context, req *pb.KeyRequest) (*pb.GetResponse, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	e, err := b.Get(ctx, string(req.Key))
	if errors.Is(err, backends.ErrNotFound) {
		return &pb.GetResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return s.answer(&e, true), nil
}

func (s *server) Fetch(req *pb.FetchRequest, stream pb.Backend_FetchServer) error {
	s.tmu.Lock()
	p, ok := s.transfers[req.TransferId]
	delete(s.transfers, req.TransferId)
	s.tmu.Unlock()
	if !ok {
		return toStatus(fmt.Errorf("%w: transfer %d expired or unknown", backends.ErrNotFound, req.TransferId))
	}
	for len(p) > 0 {
		n := min(len(p), ChunkSize)
		if err := stream.Send(&pb.Chunk{Data: p[:n]}); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func payloadOf(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

func (s *server) Set(ctx context.Context, req *pb.SetRequest) (*pb.Empty, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	e := entryOf(req.Meta)
	e.Payload = payloadOf(req.Payload)
	return &pb.Empty{}, toStatus(b.Set(ctx, string(req.Key), e))
}

// frameReader reassembles entries sent as SetFrames.
type frameReader struct {
	recv  func() (*pb.SetFrame, error)
	first *pb.SetFrame // read already, to learn the instance
}

// open reads the stream's first frame and returns the instance's backend.
func (s *server) openFrames(r *frameReader) (backends.Backend, error) {
	f, err := r.recv()
	if err != nil {
		return nil, err
	}
	r.first = f
	return s.backend(f.Instance)
}

// next returns the next entry, or io.EOF after the last.
func (r *frameReader) next() (string, backends.Entry, error) {
	f := r.first
	r.first = nil
	var err error
	if f == nil {
		if f, err = r.recv(); err != nil {
			return "", backends.Entry{}, err
		}
	}
	key := string(f.Key)
	e := entryOf(f.Meta)
	size := f.Size
	if size < 0 || size > 1<<30 {
		size = 0 // a hint only
	}
	buf := make([]byte, 0, size)
	for {
		buf = append(buf, f.Data...)
		if f.End {
			e.Payload = buf
			return key, e, nil
		}
		if f, err = r.recv(); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("%w: entry stream ended mid-entry", backends.ErrBadArgument)
			}
			return "", backends.Entry{}, err
		}
	}
}

func (s *server) SetStream(stream pb.Backend_SetStreamServer) error {
	r := &frameReader{recv: stream.Recv}
	b, err := s.openFrames(r)
	if err != nil {
		return err
	}
	fence, instance := r.first.FenceHandle, r.first.Instance
	key, e, err := r.next()
	if err != nil {
		return toStatus(err)
	}
	if fence != 0 {
		err = s.setFenced(stream.Context(), instance, b, fence, key, e)
	} else {
		err = b.Set(stream.Context(), key, e)
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.Empty{})
}

func (s *server) Delete(ctx context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(b.Delete(ctx, string(req.Key)))
}

func keysOf(bs [][]byte) []string {
	keys := make([]string, len(bs))
	for i, k := range bs {
		keys[i] = string(k)
	}
	return keys
}

func (s *server) GetMulti(ctx context.Context, req *pb.KeysRequest) (*pb.GetMultiResponse, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	es, err := backends.GetMulti(ctx, b, keysOf(req.Keys))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.GetMultiResponse{Entries: make([]*pb.GetResponse, len(es))}
	inline := 0 // payload bytes answered inline so far: at most ChunkSize
	for i, e := range es {
		if e == nil {
			out.Entries[i] = &pb.GetResponse{}
			continue
		}
		fits := inline+len(e.Payload) <= ChunkSize
		if fits {
			inline += len(e.Payload)
		}
		out.Entries[i] = s.answer(e, fits)
	}
	return out, nil
}

func (s *server) SetMulti(stream pb.Backend_SetMultiServer) error {
	r := &frameReader{recv: stream.Recv}
	b, err := s.openFrames(r)
	if err == io.EOF {
		return stream.SendAndClose(&pb.Empty{}) // no entries
	}
	if err != nil {
		return err
	}
	var keys []string
	var entries []backends.Entry
	for {
		k, e, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return toStatus(err)
		}
		keys = append(keys, k)
		entries = append(entries, e)
	}
	if err := backends.SetMulti(stream.Context(), b, keys, entries); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.Empty{})
}

func (s *server) DeleteMulti(ctx context.Context, req *pb.KeysRequest) (*pb.Empty, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(backends.DeleteMulti(ctx, b, keysOf(req.Keys)))
}

func (s *server) locker(id uint64) (lock.Locker, error) {
	b, err := s.backend(id)
	if err != nil {
		return nil, err
	}
	l := backends.LockerOf(b)
	if l == nil {
		return nil, toStatus(fmt.Errorf("%w: locks", backends.ErrUnsupported))
	}
	return l, nil
}

// keep records a granted lock under the host's handle id (or a new one),
// unless the host already abandoned it, in which case it is released.
func (s *server) keep(id uint64, h lock.Handle, cancel context.CancelFunc, instance uint64, key string) uint64 {
	if id == 0 {
		id = s.nextID.Add(1) | 1<<63 // never collides with host-chosen ids
	}
	s.tmu.Lock()
	if s.abandoned[id] {
		delete(s.abandoned, id)
		s.tmu.Unlock()
		_ = h.Unlock()
		cancel()
		return id
	}
	s.handles[id] = heldLock{h, cancel, instance, key}
	s.tmu.Unlock()
	return id
}

// lockContext returns the context a lock is taken with: cancelled if the
// call's context ends while the lock is being taken, but not when the call
// returns (a lock bound to its context must outlive the RPC); the host ends
// it with LockContextDone. settle reports whether the call's context ended
// during the attempt.
func lockContext(call context.Context) (ctx context.Context, cancel context.CancelFunc, settle func() bool) {
	ctx, cancel = context.WithCancel(context.WithoutCancel(call))
	stop := context.AfterFunc(call, cancel)
	return ctx, cancel, func() bool { return !stop() || call.Err() != nil }
}

func (s *server) Lock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	l, err := s.locker(req.Instance)
	if err != nil {
		return nil, err
	}
	lctx, cancel, settle := lockContext(ctx)
	h, err := l.Lock(lctx, string(req.Key))
	ended := settle()
	if err != nil {
		cancel()
		if ended {
			return nil, toStatus(ctx.Err())
		}
		return nil, toStatus(err)
	}
	if ended {
		// The host gave up while the lock was being taken: nobody would
		// ever release it.
		_ = h.Unlock()
		cancel()
		return nil, toStatus(ctx.Err())
	}
	return &pb.LockResponse{Acquired: true, Handle: s.keep(req.Handle, h, cancel, req.Instance, string(req.Key))}, nil
}

func (s *server) TryLock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	l, err := s.locker(req.Instance)
	if err != nil {
		return nil, err
	}
	lctx, cancel, settle := lockContext(ctx)
	h, ok, err := l.TryLock(lctx, string(req.Key))
	ended := settle()
	if err != nil || !ok {
		cancel()
		return &pb.LockResponse{}, toStatus(err)
	}
	if ended {
		_ = h.Unlock()
		cancel()
		return nil, toStatus(ctx.Err())
	}
	return &pb.LockResponse{Acquired: true, Handle: s.keep(req.Handle, h, cancel, req.Instance, string(req.Key))}, nil
}

func (s *server) Unlock(ctx context.Context, req *pb.UnlockRequest) (*pb.Empty, error) {
	s.tmu.Lock()
	hl, ok := s.handles[req.Handle]
	delete(s.handles, req.Handle)
	if !ok {
		// Not granted (yet): if a Lock for it is still in flight, release
		// its lock when granted. Forgotten after transferTTL.
		id := req.Handle
		s.abandoned[id] = true
		time.AfterFunc(transferTTL, func() {
			s.tmu.Lock()
			delete(s.abandoned, id)
			s.tmu.Unlock()
		})
	}
	s.tmu.Unlock()
	if !ok {
		return nil, toStatus(lock.ErrReleased)
	}
	err := hl.h.Unlock()
	hl.cancel()
	return &pb.Empty{}, toStatus(err)
}

func (s *server) LockContextDone(ctx context.Context, req *pb.UnlockRequest) (*pb.Empty, error) {
	s.tmu.Lock()
	hl, ok := s.handles[req.Handle]
	s.tmu.Unlock()
	if ok {
		hl.cancel()
	}
	return &pb.Empty{}, nil
}

func (s *server) EvictTag(ctx context.Context, req *pb.TagRequest) (*pb.CountResponse, error) {
	t, err := optional[backends.TagEvicter](s, req.Instance, "tag eviction")
	if err != nil {
		return nil, err
	}
	n, err := t.EvictTag(ctx, string(req.Tag))
	return &pb.CountResponse{Count: int64(n)}, toStatus(err)
}

func (s *server) List(req *pb.InstanceRequest, stream pb.Backend_ListServer) error {
	l, err := optional[backends.Lister](s, req.Instance, "listing")
	if err != nil {
		return err
	}
	err = l.List(stream.Context(), func(in backends.EntryInfo) error {
		e := backends.Entry{Created: in.Created, Version: in.Version, Tags: in.Tags}
		return stream.Send(&pb.EntryInfo{Key: []byte(in.Key), Size: in.Size, Meta: metaOf(&e)})
	})
	return toStatus(err)
}

func (s *server) StorageStats(ctx context.Context, req *pb.InstanceRequest) (*pb.StatsResponse, error) {
	r, err := optional[backends.StatReporter](s, req.Instance, "storage statistics")
	if err != nil {
		return nil, err
	}
	st, err := r.StorageStats(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.StatsResponse{Entries: st.Entries, Bytes: st.Bytes}, nil
}

func (s *server) OpenFile(req *pb.KeyRequest, stream pb.Backend_OpenFileServer) error {
	fs, err := optional[backends.FileStore](s, req.Instance, "file values")
	if err != nil {
		return err
	}
	f, e, err := fs.OpenFile(stream.Context(), string(req.Key))
	if err != nil {
		return toStatus(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return toStatus(err)
	}
	if err := stream.Send(&pb.FileFrame{Meta: metaOf(&e), Size: fi.Size()}); err != nil {
		return err
	}
	return sendFile(f, func(p []byte) error { return stream.Send(&pb.FileFrame{Data: p}) })
}

// sendFile sends r in chunks of at most ChunkSize, reusing one buffer (each
// send marshals the data before returning).
func sendFile(r io.Reader, send func([]byte) error) error {
	buf := make([]byte, ChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if serr := send(buf[:n]); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *server) StoreFile(stream pb.Backend_StoreFileServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	fs, err := optional[backends.FileStore](s, first.Instance, "file values")
	if err != nil {
		return err
	}
	var f *os.File
	b, _ := s.backend(first.Instance)
	if tf, ok := b.(backends.TempFiler); ok {
		f, err = tf.CreateTemp("regioncache-plugin-*")
	} else {
		f, err = os.CreateTemp("", "regioncache-plugin-*")
	}
	if err != nil {
		return toStatus(err)
	}
	name := f.Name()
	defer func() {
		f.Close()
		os.Remove(name) // gone already if the backend moved it
	}()
	frame := first
	for {
		if _, err := f.Write(frame.Data); err != nil {
			return toStatus(err)
		}
		frame, err = stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return toStatus(err)
	}
	if err := fs.StoreFile(stream.Context(), string(first.Key), f, entryOf(first.Meta), true); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.Empty{})
}
