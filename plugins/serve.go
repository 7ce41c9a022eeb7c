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
func Serve(f backends.Factory) {
	slog.SetDefault(pluginLogger(os.Stderr))
	watchHost()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {pluginKey: &grpcPlugin{factory: f}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
	os.Exit(0)
}

// transferTTL is how long a large payload announced by Get waits for the
// host's Fetch before it is dropped.
const transferTTL = time.Minute

type server struct {
	pb.UnimplementedBackendServer
	factory backends.Factory

	mu   sync.Mutex
	b    backends.Backend
	caps backends.Capabilities

	nextID    atomic.Uint64
	tmu       sync.Mutex
	transfers map[uint64][]byte
	handles   map[uint64]lock.Handle
}

func newServer(f backends.Factory) *server {
	return &server{factory: f, transfers: make(map[uint64][]byte), handles: make(map[uint64]lock.Handle)}
}

var errNotOpen = fmt.Errorf("%w: the host called the plugin before Open", backends.ErrClosed)

func (s *server) backend() (backends.Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil, toStatus(errNotOpen)
	}
	return s.b, nil
}

// optional returns the backend as T when it declares capability c.
func optional[T any](s *server, c backends.Capabilities, what string) (T, error) {
	var zero T
	b, err := s.backend()
	if err != nil {
		return zero, err
	}
	t, ok := b.(T)
	if !ok || !backends.Has(b, c) {
		return zero, toStatus(fmt.Errorf("%w: %s", backends.ErrUnsupported, what))
	}
	return t, nil
}

func (s *server) Open(ctx context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b != nil {
		return nil, toStatus(fmt.Errorf("%w: Open called twice", backends.ErrBadArgument))
	}
	if s.factory == nil {
		return nil, toStatus(fmt.Errorf("%w: plugins.Serve was given a nil factory", backends.ErrUnsupported))
	}
	b, err := s.factory(structToArgs(req.Args))
	if err != nil {
		return nil, toStatus(err)
	}
	s.b = b
	s.caps = backends.CapabilitiesOf(b) &^ backends.CapKeepsValues
	return &pb.OpenResponse{Capabilities: uint32(s.caps), StorageTtlNanos: int64(backends.StorageTTL(b))}, nil
}

func (s *server) Close(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(b.Close())
}

// answer turns a stored entry into a GetResponse: inline if small, else a
// transfer for Fetch.
func (s *server) answer(e *backends.Entry) *pb.GetResponse {
	r := &pb.GetResponse{Found: true, Meta: metaOf(e), Size: int64(len(e.Payload))}
	if len(e.Payload) <= ChunkSize {
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
	b, err := s.backend()
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
	return s.answer(&e), nil
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
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	e := entryOf(req.Meta)
	e.Payload = payloadOf(req.Payload)
	return &pb.Empty{}, toStatus(b.Set(ctx, string(req.Key), e))
}

// frameReader reassembles entries sent as SetFrames.
type frameReader struct {
	recv func() (*pb.SetFrame, error)
}

// next returns the next entry, or io.EOF after the last.
func (r frameReader) next() (string, backends.Entry, error) {
	f, err := r.recv()
	if err != nil {
		return "", backends.Entry{}, err
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
	b, err := s.backend()
	if err != nil {
		return err
	}
	key, e, err := frameReader{stream.Recv}.next()
	if err != nil {
		return toStatus(err)
	}
	if err := b.Set(stream.Context(), key, e); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.Empty{})
}

func (s *server) Delete(ctx context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	b, err := s.backend()
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
	b, err := s.backend()
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
		switch {
		case e == nil:
			out.Entries[i] = &pb.GetResponse{}
		case inline+len(e.Payload) <= ChunkSize:
			inline += len(e.Payload)
			out.Entries[i] = s.answer(e)
		default:
			big := *e
			out.Entries[i] = s.answer(&big)
			if out.Entries[i].TransferId == 0 { // small, but over the inline budget
				r := out.Entries[i]
				id := s.nextID.Add(1)
				s.tmu.Lock()
				s.transfers[id] = r.Payload
				s.tmu.Unlock()
				time.AfterFunc(transferTTL, func() {
					s.tmu.Lock()
					delete(s.transfers, id)
					s.tmu.Unlock()
				})
				r.Payload, r.TransferId = nil, id
			}
		}
	}
	return out, nil
}

func (s *server) SetMulti(stream pb.Backend_SetMultiServer) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	var keys []string
	var entries []backends.Entry
	r := frameReader{stream.Recv}
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
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, toStatus(backends.DeleteMulti(ctx, b, keysOf(req.Keys)))
}

func (s *server) locker() (lock.Locker, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	l := backends.LockerOf(b)
	if l == nil {
		return nil, toStatus(fmt.Errorf("%w: locks", backends.ErrUnsupported))
	}
	return l, nil
}

func (s *server) keep(h lock.Handle) uint64 {
	id := s.nextID.Add(1)
	s.tmu.Lock()
	s.handles[id] = h
	s.tmu.Unlock()
	return id
}

func (s *server) Lock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	l, err := s.locker()
	if err != nil {
		return nil, err
	}
	h, err := l.Lock(ctx, string(req.Key))
	if err != nil {
		return nil, toStatus(err)
	}
	if err := ctx.Err(); err != nil {
		// The host gave up while the lock was being taken: nobody would
		// ever release it.
		_ = h.Unlock()
		return nil, toStatus(err)
	}
	return &pb.LockResponse{Acquired: true, Handle: s.keep(h)}, nil
}

func (s *server) TryLock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	l, err := s.locker()
	if err != nil {
		return nil, err
	}
	h, ok, err := l.TryLock(ctx, string(req.Key))
	if err != nil {
		return nil, toStatus(err)
	}
	if !ok {
		return &pb.LockResponse{}, nil
	}
	if err := ctx.Err(); err != nil {
		_ = h.Unlock()
		return nil, toStatus(err)
	}
	return &pb.LockResponse{Acquired: true, Handle: s.keep(h)}, nil
}

func (s *server) Unlock(ctx context.Context, req *pb.UnlockRequest) (*pb.Empty, error) {
	s.tmu.Lock()
	h, ok := s.handles[req.Handle]
	delete(s.handles, req.Handle)
	s.tmu.Unlock()
	if !ok {
		return nil, toStatus(lock.ErrReleased)
	}
	return &pb.Empty{}, toStatus(h.Unlock())
}

func (s *server) EvictTag(ctx context.Context, req *pb.TagRequest) (*pb.CountResponse, error) {
	t, err := optional[backends.TagEvicter](s, backends.CapTags, "tag eviction")
	if err != nil {
		return nil, err
	}
	n, err := t.EvictTag(ctx, string(req.Tag))
	return &pb.CountResponse{Count: int64(n)}, toStatus(err)
}

func (s *server) List(_ *pb.Empty, stream pb.Backend_ListServer) error {
	l, err := optional[backends.Lister](s, backends.CapList, "listing")
	if err != nil {
		return err
	}
	err = l.List(stream.Context(), func(in backends.EntryInfo) error {
		e := backends.Entry{Created: in.Created, Version: in.Version, Tags: in.Tags}
		return stream.Send(&pb.EntryInfo{Key: []byte(in.Key), Size: in.Size, Meta: metaOf(&e)})
	})
	return toStatus(err)
}

func (s *server) StorageStats(ctx context.Context, _ *pb.Empty) (*pb.StatsResponse, error) {
	r, err := optional[backends.StatReporter](s, backends.CapList, "storage statistics")
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
	fs, err := optional[backends.FileStore](s, backends.CapFiles, "file values")
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
	fs, err := optional[backends.FileStore](s, backends.CapFiles, "file values")
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	var f *os.File
	b, _ := s.backend()
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
