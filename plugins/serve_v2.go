package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// The plugin side of what protocol version 2 added.

// muxInline is the largest payload a multiplexed call carries inline (Set)
// or answers inline (Get); larger ones go by unary calls and Fetch, so
// that one large value never holds up the small calls sharing the stream.
const muxInline = 64 << 10

// maxBatchBytes bounds the payload bytes of one CallBatch or ReplyBatch,
// far below gRPC's 4 MiB message limit.
const maxBatchBytes = 1 << 20

func (s *server) Info(context.Context, *pb.Empty) (*pb.InfoResponse, error) {
	r := &pb.InfoResponse{Version: s.version}
	for v := MinProtocolVersion; v <= ProtocolVersion; v++ {
		r.Protocols = append(r.Protocols, int32(v))
	}
	return r, nil
}

// Calls serves the multiplexed small calls of one host connection. Each
// call runs in its own goroutine, so a slow one holds up no other; replies
// that are ready together travel in one message.
func (s *server) Calls(stream pb.Backend_CallsServer) error {
	return s.serveCalls(stream.Context(), stream)
}

// replyCarrier carries the plugin's replies and the host's call batches: a
// Calls stream, or a channel (see channel.go).
type replyCarrier interface {
	Send(*pb.ReplyBatch) error
	Recv() (*pb.CallBatch, error)
}

// serveCalls answers the calls arriving on stream until it ends; ctx is
// the calls' parent context.
func (s *server) serveCalls(ctx context.Context, stream replyCarrier) error {
	out := newCombiner(func(rs []*pb.Reply) error { return stream.Send(&pb.ReplyBatch{Replies: rs}) }, replySize)
	defer out.fail(context.Canceled)
	var (
		mu      sync.Mutex
		cancels = make(map[uint64]context.CancelFunc)
	)
	for {
		batch, err := stream.Recv()
		if err != nil {
			mu.Lock()
			for _, c := range cancels {
				c()
			}
			mu.Unlock()
			return err
		}
		for _, c := range batch.Calls {
			if c.Cancel {
				mu.Lock()
				if f := cancels[c.Id]; f != nil {
					f()
				}
				mu.Unlock()
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			mu.Lock()
			cancels[c.Id] = cancel
			mu.Unlock()
			go func() {
				r := s.muxCall(cctx, c)
				mu.Lock()
				delete(cancels, c.Id)
				mu.Unlock()
				cancel()
				_ = out.add(r, 0) // a failed send ends Recv too

			}()
		}
	}
}

func replySize(r *pb.Reply) int { return proto.Size(r) }

// maxReplyMessage bounds an error message in a multiplexed reply.
const maxReplyMessage = 4 << 10

// replyMessage makes msg fit a reply: valid UTF-8 (a proto string cannot
// carry anything else, and a reply that does not encode would be lost) and
// at most maxReplyMessage bytes.
func replyMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) > maxReplyMessage {
		msg = strings.ToValidUTF8(msg[:maxReplyMessage], "") + "…"
	}
	return msg
}

// muxCall runs one multiplexed call.
func (s *server) muxCall(ctx context.Context, c *pb.Call) *pb.Reply {
	r := &pb.Reply{Id: c.Id}
	var err error
	switch {
	case c.Get != nil:
		var b backends.Backend
		if b, err = s.backend(c.Get.Instance); err != nil {
			break
		}
		var e backends.Entry
		e, err = b.Get(ctx, string(c.Get.Key))
		switch {
		case errors.Is(err, backends.ErrNotFound):
			r.Get, err = &pb.GetResponse{}, nil
		case err == nil:
			r.Get = s.answer(&e, len(e.Payload) <= muxInline)
		}
	case c.Set != nil:
		_, err = s.Set(ctx, c.Set)
	case c.Delete != nil:
		_, err = s.Delete(ctx, c.Delete)
	default:
		err = fmt.Errorf("%w: an empty call", backends.ErrUnsupported)
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st, _ = status.FromError(toStatus(err))
		}
		// A message travels in a proto string: valid UTF-8, and short.
		r.Code, r.Message = uint32(st.Code()), replyMessage(st.Message())
	}
	return r
}

// combiner sends items from many goroutines through one stream without a
// goroutine of its own: a goroutine that adds an item when no send is under
// way sends it, and with it (in messages of at most maxBatchBytes of
// payload) whatever other goroutines added meanwhile; the others return at
// once. A send that fails fails the combiner for good.
type combiner[T any] struct {
	send func([]T) error
	size func(T) int

	mu      sync.Mutex
	queue   []T
	sending bool
	err     error
	// sender is the owner (see add) of the goroutine sending, 0 if none.
	sender atomic.Uint64
}

func newCombiner[T any](send func([]T) error, size func(T) int) *combiner[T] {
	return &combiner[T]{send: send, size: size}
}

// add queues x, and sends the queue unless another goroutine is sending.
// owner names the caller while it sends (for the host's watchdog).
func (c *combiner[T]) add(x T, owner uint64) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.queue = append(c.queue, x)
	if c.sending {
		c.mu.Unlock()
		return nil
	}
	c.sending = true
	c.sender.Store(owner)
	for {
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		var err error
		for len(q) > 0 && err == nil {
			n, bytes := 0, 0
			for n < len(q) && (n == 0 || bytes+c.size(q[n]) <= maxBatchBytes) {
				bytes += c.size(q[n])
				n++
			}
			err = c.send(q[:n])
			q = q[n:]
		}
		c.mu.Lock()
		if err != nil {
			c.err = err
		}
		if err != nil || len(c.queue) == 0 {
			c.sending = false
			c.sender.Store(0)
			c.mu.Unlock()
			return err
		}
	}
}

// fail makes every later add fail with err.
func (c *combiner[T]) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.queue = nil
	c.mu.Unlock()
}

// heldHandle returns the lock the host holds under handle id.
func (s *server) heldHandle(id uint64) (heldLock, bool) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	hl, ok := s.handles[id]
	return hl, ok
}

// setFenced stores e under key only while the host's lock handle is held.
func (s *server) setFenced(ctx context.Context, instance uint64, b backends.Backend, handle uint64, key string, e backends.Entry) error {
	hl, ok := s.heldHandle(handle)
	if !ok {
		return fmt.Errorf("%w: lock handle %d is not held by this plugin process", lock.ErrLost, handle)
	}
	if hl.instance != instance || hl.key != key {
		return fmt.Errorf("%w: lock handle %d is not this instance's lock of that key", backends.ErrUnsupported, handle)
	}
	if f, ok := b.(backends.FencedSetter); ok {
		err := f.SetFenced(ctx, key, e, hl.h)
		if !errors.Is(err, backends.ErrUnsupported) {
			return err
		}
	}
	// The backend cannot fence in the store itself; its lock is held by
	// this process, which is as much as it can say.
	return b.Set(ctx, key, e)
}

func (s *server) SetFenced(ctx context.Context, req *pb.SetRequest) (*pb.Empty, error) {
	b, err := s.backend(req.Instance)
	if err != nil {
		return nil, err
	}
	e := entryOf(req.Meta)
	e.Payload = payloadOf(req.Payload)
	return &pb.Empty{}, toStatus(s.setFenced(ctx, req.Instance, b, req.FenceHandle, string(req.Key), e))
}

func (s *server) CreateTemp(ctx context.Context, req *pb.CreateTempRequest) (*pb.FileRef, error) {
	if _, err := optional[backends.FileStore](s, req.Instance, "file values"); err != nil {
		return nil, err
	}
	b, _ := s.backend(req.Instance)
	tf, ok := b.(backends.TempFiler)
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: the backend chooses no place for temporary files", backends.ErrUnsupported))
	}
	f, err := tf.CreateTemp(req.Pattern)
	if err != nil {
		return nil, toStatus(err)
	}
	defer f.Close()
	ref, err := refOf(f)
	if err != nil {
		os.Remove(f.Name())
		return nil, toStatus(err)
	}
	return ref, nil
}

// refOf names and identifies an open file.
func refOf(f *os.File) (*pb.FileRef, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	dev, ino, _, ok := fileID(fi)
	if !ok {
		return nil, fmt.Errorf("%w: no file identity on this system", backends.ErrUnsupported)
	}
	abs, err := filepath.Abs(f.Name())
	if err != nil {
		return nil, err
	}
	return &pb.FileRef{Path: abs, Dev: dev, Ino: ino, Size: fi.Size()}, nil
}

// sameFile reports whether f is the file ref identifies, with ref's size.
func sameFile(f *os.File, ref *pb.FileRef) bool {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	dev, ino, _, ok := fileID(fi)
	return ok && dev == ref.Dev && ino == ref.Ino && fi.Size() == ref.Size
}

func (s *server) StoreFilePath(ctx context.Context, req *pb.StorePathRequest) (*pb.StorePathResponse, error) {
	fs, err := optional[backends.FileStore](s, req.Instance, "file values")
	if err != nil {
		return nil, err
	}
	if req.File == nil {
		return nil, toStatus(fmt.Errorf("%w: StoreFilePath without a file", backends.ErrBadArgument))
	}
	f, err := os.Open(req.File.Path)
	if err != nil {
		return &pb.StorePathResponse{}, nil // not visible here: the host streams
	}
	defer f.Close()
	if !sameFile(f, req.File) {
		return &pb.StorePathResponse{}, nil
	}
	if err := fs.StoreFile(ctx, string(req.Key), f, entryOf(req.Meta), req.Move); err != nil {
		return nil, toStatus(err)
	}
	return &pb.StorePathResponse{Taken: true}, nil
}

// statusOf is the error of a reply, as a gRPC status.
func statusOf(r *pb.Reply) error {
	if r.Code == 0 {
		return nil
	}
	return status.Error(codes.Code(r.Code), r.Message)
}
