// Command hostile is a plugin that lies, for the tests of package plugins:
// it speaks the plugin protocol itself (not through plugins.Serve) and
// misbehaves in the way each backend instance's "behaviour" argument
// selects, on keys that start with "bad" (and on every call of the
// operations without a key). Other keys are served honestly from memory, so
// a test can check that the host still works after a lie.
//
// Behaviours:
//
//	huge          Get announces a 512 GiB value and streams 3 MiB of it
//	endless       Get announces 2 MiB and streams without end
//	short         Get announces 3 MiB and streams 1 MiB
//	negative      Get announces -1 bytes
//	drip          Get streams 1 MiB one byte every 10ms
//	silent        Get never answers, whatever the host's context says
//	oversized     Get answers a 16 MiB value in one message
//	panic         Get panics (the process dies)
//	garbage       Get answers with unknown ids and an unknown error code
//	multi-short   GetMulti answers one entry too few
//	multi-long    GetMulti answers five entries too many
//	unserved      declares every optional interface and serves none
//	lie-counts    EvictTag and StorageStats answer negative numbers
//	list-endless  List never ends
//	file-huge     OpenFile announces 1 TiB and streams 1 MiB
//	file-endless  OpenFile announces 1 MiB and streams without end
//	file-drip     OpenFile streams 1 MiB one byte every 10ms
//	frame-huge    (channel) Get is answered by a frame announcing 1 GiB, then 1 MiB of junk
//	frame-garbage (channel) Get is answered by a frame that does not decode
//	frame-half    (channel) Get is answered by half a frame, then nothing
//
// Behaviours marked (channel) lie on the channel of protocol version 3; on
// the Calls stream they answer honestly.
//
// The executable name selects what the whole process does:
// regioncache-backend-hostile-garbage answers the handshake with garbage,
// regioncache-backend-hostile-v1 speaks only protocol version 1,
// regioncache-backend-hostile-v2 only versions 1 and 2 (small calls on the
// Calls stream), regioncache-backend-hostile-badoffer offers a channel
// nobody listens on, regioncache-backend-hostile-slowoffer takes 3 s to
// offer one; any other name serves the behaviours above over
// versions 1 to 3.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

func main() {
	name := plugins.NameOf(os.Args[0])
	if strings.HasSuffix(name, "-garbage") {
		// What go-plugin reads from stdout is garbage: the host must fail
		// at once, naming the plugin.
		fmt.Println("\x00\xff|this is|not|a handshake|at all")
		time.Sleep(time.Hour)
		return
	}
	versions := []int{1, 2, 3}
	switch {
	case strings.HasSuffix(name, "-v1"):
		versions = []int{1}
	case strings.HasSuffix(name, "-v2"):
		versions = []int{1, 2}
	}
	s := &server{instances: map[uint64]*instance{}, badOffer: strings.HasSuffix(name, "-badoffer"), slowOffer: strings.HasSuffix(name, "-slowoffer")}
	for _, v := range versions {
		s.protocols = append(s.protocols, int32(v))
	}
	sets := map[int]plugin.PluginSet{}
	for _, v := range versions {
		sets[v] = plugin.PluginSet{"backend": grpcPlugin{s: s}}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugins.Handshake(),
		VersionedPlugins: sets,
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	s *server
}

func (p grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, g *grpc.Server) error {
	pb.RegisterBackendServer(g, p.s)
	return nil
}

func (grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

type instance struct {
	behaviour string
	mu        sync.Mutex
	data      map[string][]byte
	locks     *lock.Keyed
}

type server struct {
	pb.UnimplementedBackendServer
	mu        sync.Mutex
	instances map[uint64]*instance
	next      atomic.Uint64
	handles   sync.Map // uint64 -> lock.Handle
	transfers sync.Map // uint64 -> transfer
	protocols []int32
	badOffer  bool
	slowOffer bool
}

type transfer struct {
	behaviour string
}

var never = make(chan struct{})

func (s *server) inst(id uint64) (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "no such instance")
	}
	return in, nil
}

func bad(key []byte) bool { return strings.HasPrefix(string(key), "bad") }

func (s *server) Open(_ context.Context, req *pb.OpenRequest) (*pb.OpenResponse, error) {
	b := ""
	if v := req.Args.GetFields()["behaviour"]; v != nil {
		b = v.GetStringValue()
	}
	id := s.next.Add(1)
	s.mu.Lock()
	s.instances[id] = &instance{behaviour: b, data: map[string][]byte{}, locks: lock.NewKeyed()}
	s.mu.Unlock()
	// multi, lock, tags, list, files, stats
	return &pb.OpenResponse{Instance: id, Capabilities: 1 | 2 | 8 | 16 | 32 | 512}, nil
}

func (s *server) Close(context.Context, *pb.InstanceRequest) (*pb.Empty, error) {
	return &pb.Empty{}, nil
}

func (s *server) Info(context.Context, *pb.Empty) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Version: "hostile-1.0", Protocols: s.protocols}, nil
}

// get is Get's answer, unary or multiplexed.
func (s *server) get(ctx context.Context, req *pb.KeyRequest) (*pb.GetResponse, error) {
	in, err := s.inst(req.Instance)
	if err != nil {
		return nil, err
	}
	if !bad(req.Key) {
		in.mu.Lock()
		v, ok := in.data[string(req.Key)]
		in.mu.Unlock()
		if !ok {
			return &pb.GetResponse{}, nil
		}
		return &pb.GetResponse{Found: true, Payload: v, Size: int64(len(v))}, nil
	}
	t := s.next.Add(1)
	s.transfers.Store(t, transfer{behaviour: in.behaviour})
	r := &pb.GetResponse{Found: true, TransferId: t}
	switch in.behaviour {
	case "huge":
		r.Size = 512 << 30
	case "endless":
		r.Size = 2 << 20
	case "short":
		r.Size = 3 << 20
	case "negative":
		r.Size = -1
	case "drip":
		r.Size = 1 << 20
	case "silent":
		<-never
	case "oversized":
		return &pb.GetResponse{Found: true, Payload: make([]byte, 16<<20), Size: 16 << 20}, nil
	case "panic":
		panic("hostile: a panic in Get")
	default:
		return &pb.GetResponse{Found: true, Payload: []byte("bad but honest"), Size: 14}, nil
	}
	return r, nil
}

func (s *server) Get(ctx context.Context, req *pb.KeyRequest) (*pb.GetResponse, error) {
	return s.get(ctx, req)
}

func (s *server) Fetch(req *pb.FetchRequest, st pb.Backend_FetchServer) error {
	v, ok := s.transfers.LoadAndDelete(req.TransferId)
	if !ok {
		return status.Error(codes.NotFound, "no such transfer")
	}
	chunk := make([]byte, 1<<20)
	switch v.(transfer).behaviour {
	case "huge":
		for i := 0; i < 3; i++ {
			if err := st.Send(&pb.Chunk{Data: chunk}); err != nil {
				return err
			}
		}
	case "endless":
		for {
			if err := st.Send(&pb.Chunk{Data: chunk}); err != nil {
				return err
			}
		}
	case "short":
		return st.Send(&pb.Chunk{Data: chunk})
	case "drip":
		for i := 0; i < 1<<20; i++ {
			if err := st.Send(&pb.Chunk{Data: []byte{'x'}}); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func (s *server) set(req *pb.SetRequest) error {
	in, err := s.inst(req.Instance)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.data[string(req.Key)] = req.Payload
	in.mu.Unlock()
	return nil
}

func (s *server) Set(_ context.Context, req *pb.SetRequest) (*pb.Empty, error) {
	return &pb.Empty{}, s.set(req)
}

func (s *server) del(req *pb.KeyRequest) error {
	in, err := s.inst(req.Instance)
	if err != nil {
		return err
	}
	in.mu.Lock()
	delete(in.data, string(req.Key))
	in.mu.Unlock()
	return nil
}

func (s *server) Delete(_ context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	return &pb.Empty{}, s.del(req)
}

func (s *server) Calls(st pb.Backend_CallsServer) error {
	var mu sync.Mutex
	send := func(rs ...*pb.Reply) {
		mu.Lock()
		defer mu.Unlock()
		_ = st.Send(&pb.ReplyBatch{Replies: rs})
	}
	return s.serveCalls(st.Context(), st.Recv, send, nil)
}

// serveCalls answers the multiplexed calls that recv returns, with send;
// raw, if not nil, writes bytes on the channel as they are (for its lies).
func (s *server) serveCalls(ctx context.Context, recv func() (*pb.CallBatch, error), send func(...*pb.Reply), raw func([]byte)) error {
	for {
		b, err := recv()
		if err != nil {
			return err
		}
		for _, c := range b.Calls {
			if c.Cancel {
				continue
			}
			go func() {
				r := &pb.Reply{Id: c.Id}
				var err error
				switch {
				case c.Get != nil:
					if bad(c.Get.Key) && s.behaviour(c.Get.Instance) == "garbage" {
						var junk []*pb.Reply
						for i := 0; i < 1000; i++ {
							junk = append(junk, &pb.Reply{Id: c.Id + 1 + uint64(i)*7919, Code: 5})
						}
						send(junk...)
						send(&pb.Reply{Id: c.Id, Code: 12345, Message: "garbage"}, &pb.Reply{Id: c.Id, Get: &pb.GetResponse{Found: true, Size: -5, TransferId: 99}})
						return
					}
					if bad(c.Get.Key) && raw != nil && frameLie(s.behaviour(c.Get.Instance), raw) {
						return
					}
					r.Get, err = s.get(ctx, c.Get)
				case c.Set != nil:
					err = s.set(c.Set)
				case c.Delete != nil:
					err = s.del(c.Delete)
				}
				if err != nil {
					sta, _ := status.FromError(err)
					r.Code, r.Message = uint32(sta.Code()), sta.Message()
				}
				send(r)
			}()
		}
	}
}

// frameLie writes behaviour's lie on the channel, if it has one.
func frameLie(behaviour string, raw func([]byte)) bool {
	switch behaviour {
	case "frame-huge":
		raw(binary.BigEndian.AppendUint32(nil, 1<<30))
		raw(make([]byte, 1<<20))
	case "frame-garbage":
		junk := append([]byte{0x0f, 0xff, 0xff}, "this is not a ReplyBatch"...) // wire type 7 does not exist
		raw(append(binary.BigEndian.AppendUint32(nil, uint32(len(junk))), junk...))
	case "frame-half":
		raw(append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 10)...))
		<-never
	default:
		return false
	}
	return true
}

// OpenChannel offers a channel (protocol version 3), framed as the protocol
// says: a 4-byte big-endian length and a message. It accepts the first
// connection without checking its token: a careless plugin, not a danger to
// the host.
func (s *server) OpenChannel(context.Context, *pb.Empty) (*pb.ChannelOffer, error) {
	dir, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	path := filepath.Join(dir, "s")
	if s.slowOffer {
		time.Sleep(3 * time.Second)
	}
	if s.badOffer {
		return &pb.ChannelOffer{Network: "unix", Address: path, Token: make([]byte, 32)}, nil
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	go func() {
		defer os.RemoveAll(dir)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := readFrame(r); err != nil { // the token
			return
		}
		var mu sync.Mutex
		raw := func(p []byte) {
			mu.Lock()
			defer mu.Unlock()
			_, _ = c.Write(p)
		}
		send := func(rs ...*pb.Reply) {
			p, err := proto.Marshal(&pb.ReplyBatch{Replies: rs})
			if err != nil {
				return
			}
			raw(append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...))
		}
		recv := func() (*pb.CallBatch, error) {
			p, err := readFrame(r)
			if err != nil {
				return nil, err
			}
			b := &pb.CallBatch{}
			return b, proto.Unmarshal(p, b)
		}
		_ = s.serveCalls(context.Background(), recv, send, raw)
	}()
	return &pb.ChannelOffer{Network: "unix", Address: path, Token: make([]byte, 32)}, nil
}

// readFrame reads one frame of at most 8 MiB.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 8<<20 {
		return nil, fmt.Errorf("a frame of %d bytes", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}

func (s *server) behaviour(id uint64) string {
	in, err := s.inst(id)
	if err != nil {
		return ""
	}
	return in.behaviour
}

var unimplemented = status.Error(codes.Unimplemented, "hostile: declared but not served")

func (s *server) GetMulti(ctx context.Context, req *pb.KeysRequest) (*pb.GetMultiResponse, error) {
	n := len(req.Keys)
	switch s.behaviour(req.Instance) {
	case "unserved":
		return nil, unimplemented
	case "multi-short":
		n--
	case "multi-long":
		n += 5
	}
	out := &pb.GetMultiResponse{}
	for i := 0; i < n; i++ {
		out.Entries = append(out.Entries, &pb.GetResponse{})
	}
	return out, nil
}

func (s *server) lock(ctx context.Context, req *pb.KeyRequest, try bool) (*pb.LockResponse, error) {
	in, err := s.inst(req.Instance)
	if err != nil {
		return nil, err
	}
	if in.behaviour == "unserved" {
		return nil, unimplemented
	}
	var h lock.Handle
	if try {
		var ok bool
		if h, ok, err = in.locks.TryLock(ctx, string(req.Key)); err != nil || !ok {
			return &pb.LockResponse{}, err
		}
	} else if h, err = in.locks.Lock(ctx, string(req.Key)); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s.handles.Store(req.Handle, h)
	return &pb.LockResponse{Acquired: true, Handle: req.Handle}, nil
}

func (s *server) Lock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	return s.lock(ctx, req, false)
}

func (s *server) TryLock(ctx context.Context, req *pb.KeyRequest) (*pb.LockResponse, error) {
	return s.lock(ctx, req, true)
}

func (s *server) Unlock(_ context.Context, req *pb.UnlockRequest) (*pb.Empty, error) {
	if h, ok := s.handles.LoadAndDelete(req.Handle); ok {
		return &pb.Empty{}, h.(lock.Handle).Unlock()
	}
	return nil, status.Error(codes.AlreadyExists, "not held")
}

func (s *server) LockContextDone(context.Context, *pb.UnlockRequest) (*pb.Empty, error) {
	return &pb.Empty{}, nil
}

func (s *server) EvictTag(_ context.Context, req *pb.TagRequest) (*pb.CountResponse, error) {
	switch s.behaviour(req.Instance) {
	case "unserved":
		return nil, unimplemented
	case "lie-counts":
		return &pb.CountResponse{Count: -7}, nil
	}
	return &pb.CountResponse{}, nil
}

func (s *server) StorageStats(_ context.Context, req *pb.InstanceRequest) (*pb.StatsResponse, error) {
	switch s.behaviour(req.Instance) {
	case "unserved":
		return nil, unimplemented
	case "lie-counts":
		return &pb.StatsResponse{Entries: -1, Bytes: -1 << 62}, nil
	}
	return &pb.StatsResponse{}, nil
}

func (s *server) List(req *pb.InstanceRequest, st pb.Backend_ListServer) error {
	switch s.behaviour(req.Instance) {
	case "unserved":
		return unimplemented
	case "list-endless":
		for i := 0; ; i++ {
			if err := st.Send(&pb.EntryInfo{Key: fmt.Appendf(nil, "k%d", i), Size: 1}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *server) OpenFile(req *pb.KeyRequest, st pb.Backend_OpenFileServer) error {
	b := s.behaviour(req.Instance)
	if b == "unserved" {
		return unimplemented
	}
	if !bad(req.Key) {
		return status.Error(codes.NotFound, "no file")
	}
	chunk := make([]byte, 1<<20)
	switch b {
	case "file-huge":
		if err := st.Send(&pb.FileFrame{Size: 1 << 40}); err != nil {
			return err
		}
		return st.Send(&pb.FileFrame{Data: chunk})
	case "file-endless":
		if err := st.Send(&pb.FileFrame{Size: 1 << 20}); err != nil {
			return err
		}
		for {
			if err := st.Send(&pb.FileFrame{Data: chunk}); err != nil {
				return err
			}
		}
	case "file-drip":
		if err := st.Send(&pb.FileFrame{Size: 1 << 20}); err != nil {
			return err
		}
		for i := 0; i < 1<<20; i++ {
			if err := st.Send(&pb.FileFrame{Data: []byte{'x'}}); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return status.Error(codes.NotFound, "no file")
}

func (s *server) StoreFile(st pb.Backend_StoreFileServer) error {
	f, err := st.Recv()
	if err != nil {
		return err
	}
	if s.behaviour(f.Instance) == "unserved" {
		return unimplemented
	}
	for {
		if _, err := st.Recv(); err != nil {
			return st.SendAndClose(&pb.Empty{})
		}
	}
}
