package plugins

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// The channel (protocol version 3) carries the Calls stream's messages on a
// Unix socket of their own instead of a gRPC stream: a call costs two
// socket writes and two wake-ups of a reading goroutine, without HTTP/2
// framing, TLS records and the transport's writer goroutines in between.
// The plugin offers the socket over the (mutually authenticated) gRPC
// connection, in a directory only its user can enter, with a random token
// the host must send first; it accepts one connection and removes the
// socket. Anything that goes wrong on the way makes the host use the Calls
// stream instead.

// maxFrame bounds one frame: a batch of small calls (maxBatchBytes) and one
// call beyond it, each at most muxInline bytes of payload.
const maxFrame = 4 << 20

// tokenSize is the length of the channel's token.
const tokenSize = 32

// channelAcceptTimeout bounds how long an offered socket waits for the host.
const channelAcceptTimeout = 10 * time.Second

// frameConn carries S messages out and R messages in over one connection,
// each as a 4-byte big-endian length and its protobuf encoding. Send is
// called by one goroutine at a time (the combiner's sender), Recv by one
// reader.
type frameConn[S proto.Message, R any, PR interface {
	*R
	proto.Message
}] struct {
	c    net.Conn
	r    *bufio.Reader
	wbuf []byte
	// partial is when Recv got a frame's length and began waiting for the
	// rest (Unix ns), 0 between frames. A peer writes a frame at once, so
	// one that stays partial means a peer that stalls mid-frame, behind
	// which every later reply waits.
	partial atomic.Int64
}

func newFrameConn[S proto.Message, R any, PR interface {
	*R
	proto.Message
}](c net.Conn) *frameConn[S, R, PR] {
	return &frameConn[S, R, PR]{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// Send writes m as one frame with one write.
func (f *frameConn[S, R, PR]) Send(m S) error {
	buf, err := proto.MarshalOptions{}.MarshalAppend(append(f.wbuf[:0], 0, 0, 0, 0), m)
	if err != nil {
		return err
	}
	if len(buf)-4 > maxFrame {
		return fmt.Errorf("a frame of %d bytes exceeds the channel's %d", len(buf)-4, maxFrame)
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_, err = f.c.Write(buf)
	if cap(buf) <= 256<<10 {
		f.wbuf = buf[:0]
	} else {
		f.wbuf = nil // do not keep a large buffer for small calls
	}
	return err
}

// Recv reads one frame and decodes it.
func (f *frameConn[S, R, PR]) Recv() (PR, error) {
	p, err := readFrameNoting(f.r, maxFrame, &f.partial)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			// The peer is gone (or hung up): what a broken gRPC
			// connection says, so that the host restarts the plugin.
			return nil, status.Errorf(codes.Unavailable, "the channel ended: %v", err)
		}
		return nil, err
	}
	m := PR(new(R))
	if err := proto.Unmarshal(p, m); err != nil {
		return nil, fmt.Errorf("a frame that does not decode: %w", err)
	}
	return m, nil
}

// stalledFor reports how long Recv has been waiting for the rest of a frame
// (0: it is between frames).
func (f *frameConn[S, R, PR]) stalledFor() time.Duration {
	if t := f.partial.Load(); t != 0 {
		return time.Since(time.Unix(0, t))
	}
	return 0
}

// readFrame reads one frame of at most limit bytes. The buffer grows with
// the bytes actually received (to at most twice them), never to the length
// the frame announces up front.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	return readFrameNoting(r, limit, nil)
}

// readFrameNoting is readFrame that sets *partial, if not nil, to the time
// the frame's length arrived while it waits for the rest.
func readFrameNoting(r io.Reader, limit int, partial *atomic.Int64) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if partial != nil {
		partial.Store(time.Now().UnixNano())
		defer partial.Store(0)
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > limit {
		return nil, fmt.Errorf("a frame of %d bytes announced (the limit is %d)", n, limit)
	}
	buf := make([]byte, 0, min(n, 64<<10))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(n, 2*cap(buf))-len(buf))...)[:len(buf)]
		}
		m, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// OpenChannel implements the version-3 RPC: it listens on a new Unix socket
// in a private directory and serves the Calls protocol on the one
// connection that presents the token.
func (s *server) OpenChannel(context.Context, *pb.Empty) (*pb.ChannelOffer, error) {
	if runtime.GOOS == "windows" {
		return nil, status.Error(codes.Unimplemented, "no channel on windows")
	}
	dir, err := os.MkdirTemp("", "regioncache-plugin-")
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "channel: %v", err)
	}
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, status.Errorf(codes.Unavailable, "channel: %v", err)
	}
	token := make([]byte, tokenSize)
	if _, err := rand.Read(token); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, status.Errorf(codes.Unavailable, "channel: %v", err)
	}
	go func() {
		defer os.RemoveAll(dir)
		c, err := acceptChannel(ln, token)
		ln.Close()
		if err != nil {
			return
		}
		os.RemoveAll(dir) // nobody else can connect from now on
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_ = s.serveCalls(ctx, newFrameConn[*pb.ReplyBatch, pb.CallBatch](c))
	}()
	return &pb.ChannelOffer{Network: "unix", Address: path, Token: token}, nil
}

// acceptChannel accepts connections on ln until one presents token as its
// first frame, or the accept timeout passes.
func acceptChannel(ln net.Listener, token []byte) (net.Conn, error) {
	deadline := time.Now().Add(channelAcceptTimeout)
	if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(deadline)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(deadline)
		got, err := readFrame(c, tokenSize)
		if err == nil && subtle.ConstantTimeCompare(got, token) == 1 {
			_ = c.SetDeadline(time.Time{})
			return c, nil
		}
		c.Close()
	}
}

// openChannel asks the plugin for a channel and connects to it; the mux on
// it is the caller's. An error means the plugin has none to offer (or it
// could not be reached): the caller uses the Calls stream.
func openChannel(ctx context.Context, c pb.BackendClient) (*mux, error) {
	ctx, cancel := context.WithTimeout(ctx, channelAcceptTimeout)
	defer cancel()
	offer, err := c.OpenChannel(ctx, &pb.Empty{})
	if err != nil {
		return nil, err
	}
	if offer.Network != "unix" || len(offer.Token) != tokenSize {
		return nil, fmt.Errorf("%w: a channel offer of network %q with a %d-byte token", ErrProtocolVersion, offer.Network, len(offer.Token))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", offer.Address)
	if err != nil {
		return nil, err
	}
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(offer.Token)))
	if _, err := conn.Write(append(hdr, offer.Token...)); err != nil {
		conn.Close()
		return nil, err
	}
	return newMuxOn(newFrameConn[*pb.CallBatch, pb.ReplyBatch](conn), func() { conn.Close() }), nil
}
