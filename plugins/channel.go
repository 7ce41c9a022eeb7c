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
	// Monotonic times, as durations since base (0: none): when Recv got a
	// frame's length and began waiting for the rest, and when bytes last
	// arrived. A peer writes a frame at once, so one whose rest stops
	// coming is a peer that stalls mid-frame, behind which every later
	// reply waits.
	base     time.Time
	partial  atomic.Int64
	progress atomic.Int64
}

func newFrameConn[S proto.Message, R any, PR interface {
	*R
	proto.Message
}](c net.Conn) *frameConn[S, R, PR] {
	f := &frameConn[S, R, PR]{c: c, base: time.Now()}
	f.r = bufio.NewReaderSize(progressReader{c, f.noteProgress}, 64<<10)
	return f
}

// progressReader notes each read that brings bytes.
type progressReader struct {
	r    io.Reader
	note func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.note()
	}
	return n, err
}

func (f *frameConn[S, R, PR]) since() int64 { return int64(time.Since(f.base)) + 1 }

func (f *frameConn[S, R, PR]) noteProgress() { f.progress.Store(f.since()) }

// Send writes m as one frame with one write. A frame that cannot be sent
// ends the connection: the peer must not wait for it.
func (f *frameConn[S, R, PR]) Send(m S) (err error) {
	defer func() {
		if err != nil {
			f.c.Close()
		}
	}()
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
	p, err := readFrameMarking(f.r, maxFrame, func(partial bool) {
		if partial {
			f.partial.Store(f.since())
		} else {
			f.partial.Store(0)
		}
	})
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

// stalledFor reports how long Recv has been waiting, in the middle of a
// frame, for bytes that do not come (0: it is between frames, or bytes keep
// arriving).
func (f *frameConn[S, R, PR]) stalledFor() time.Duration {
	p := f.partial.Load()
	if p == 0 {
		return 0
	}
	return time.Duration(f.since() - max(p, f.progress.Load()))
}

// readFrame reads one frame of at most limit bytes. The buffer grows with
// the bytes actually received (to at most twice them), never to the length
// the frame announces up front.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	return readFrameMarking(r, limit, nil)
}

// readFrameMarking is readFrame that calls mark, if not nil, with true when
// the frame's length has arrived and with false when the frame is read (or
// failed).
func readFrameMarking(r io.Reader, limit int, mark func(partial bool)) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if mark != nil {
		mark(true)
		defer mark(false)
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
