package plugins

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// A plugin built with this package carries small calls on a channel, and
// its socket is gone from the file system once the host is connected.
func TestSmallCallsUseTheChannel(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no channel on windows")
	}
	be, err := Open(pluginPath("memory"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	if err := be.Set(ctx, "k", backends.Entry{Payload: []byte("v"), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e, err := be.Get(ctx, "k")
	if err != nil || string(e.Payload) != "v" {
		t.Fatalf("Get = %q, %v", e.Payload, err)
	}
	p, err := be.g.proc()
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.calls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fc, ok := m.carrier.(*frameConn[*pb.CallBatch, pb.ReplyBatch, *pb.ReplyBatch])
	if !ok {
		t.Fatalf("small calls travel on %T, want a channel", m.carrier)
	}
	path := fc.c.RemoteAddr().String()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the channel's socket %s is still there after the host connected: %v", path, err)
	}
	if _, err := os.Lstat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the channel's directory is still there after the host connected: %v", err)
	}
}

// readFrame refuses announced lengths beyond its limit without allocating
// them, grows its buffer with the bytes received, and reports truncation.
func TestReadFrameBounds(t *testing.T) {
	frame := func(n uint32, body []byte) io.Reader {
		return bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, n), body...))
	}
	if _, err := readFrame(frame(1<<31, nil), maxFrame); err == nil || !strings.Contains(err.Error(), "announced") {
		t.Fatalf("a 2 GiB frame: %v, want an error naming the announced size", err)
	}
	if _, err := readFrame(frame(maxFrame, []byte("short")), maxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
	big := bytes.Repeat([]byte("x"), 300<<10)
	got, err := readFrame(frame(uint32(len(big)), big), maxFrame)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 300 KiB frame: %d bytes, %v", len(got), err)
	}
	// A frame that announces the limit and sends 10 bytes costs at most the
	// first buffer, not the limit.
	allocs := testing.AllocsPerRun(1, func() { _, _ = readFrame(frame(maxFrame, make([]byte, 10)), maxFrame) })
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for range 10 {
		_, _ = readFrame(frame(maxFrame, make([]byte, 10)), maxFrame)
	}
	runtime.ReadMemStats(&ms1)
	if per := (ms1.TotalAlloc - ms0.TotalAlloc) / 10; per > 128<<10 {
		t.Fatalf("a 4 MiB announcement with 10 bytes behind it allocated %d bytes (%v allocations)", per, allocs)
	}
}

// The channel's socket takes only the connection that presents the token:
// others are closed, and the host's connection is accepted after them.
func TestChannelWantsTheToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no channel on windows")
	}
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	token := bytes.Repeat([]byte{7}, tokenSize)
	send := func(p []byte) net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := acceptChannel(ln, token)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	wrong := send(bytes.Repeat([]byte{8}, tokenSize))
	defer wrong.Close()
	huge := send(nil) // announces 0 bytes: not the token either
	defer huge.Close()
	for _, c := range []net.Conn{wrong, huge} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("a connection without the token was not closed: %v", err)
		}
	}
	right := send(token)
	defer right.Close()
	select {
	case c := <-accepted:
		if c == nil {
			t.Fatal("the connection with the token was refused")
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the connection with the token was not accepted")
	}
}

// An offer the host cannot use (a path nobody listens on, a short token)
// is an error for openChannel: the host then uses the Calls stream.
func TestUnusableChannelOffer(t *testing.T) {
	for _, offer := range []*pb.ChannelOffer{
		{Network: "unix", Address: filepath.Join(t.TempDir(), "nobody"), Token: make([]byte, tokenSize)},
		{Network: "unix", Address: "/dev/null", Token: make([]byte, tokenSize)},
		{Network: "tcp", Address: "127.0.0.1:1", Token: make([]byte, tokenSize)},
		{Network: "unix", Address: "x", Token: []byte("short")},
	} {
		if _, err := openChannel(context.Background(), offering{offer: offer}); err == nil {
			t.Errorf("offer %v: no error", offer)
		}
	}
}

// offering is a plugin client whose only answer is a channel offer.
type offering struct {
	pb.BackendClient
	offer *pb.ChannelOffer
}

func (o offering) OpenChannel(context.Context, *pb.Empty, ...grpc.CallOption) (*pb.ChannelOffer, error) {
	return o.offer, nil
}

// A reply that cannot be sent (here: invalid UTF-8 in a proto string) ends
// the channel, so that the host does not wait for it on an open socket; and
// the server's replies never carry such a message.
func TestUnsendableFrameEndsTheChannel(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	fc := newFrameConn[*pb.ReplyBatch, pb.CallBatch](a)
	err := fc.Send(&pb.ReplyBatch{Replies: []*pb.Reply{{Id: 1, Message: "bad \xff utf-8"}}})
	if err == nil {
		t.Fatal("a reply with invalid UTF-8 was sent")
	}
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the peer reads %v, want io.EOF: the channel must end", err)
	}
	msg := replyMessage("bad \xff utf-8 " + strings.Repeat("x", 10<<10))
	if !utf8.ValidString(msg) || len(msg) > maxReplyMessage+len("…") {
		t.Fatalf("replyMessage left %d bytes, valid UTF-8 %v", len(msg), utf8.ValidString(msg))
	}
}

// stalledFor counts the time no bytes of a half-received frame arrived, not
// the time since the frame began: a reply that keeps coming, however
// slowly, is not a stall.
func TestStalledForCountsSilenceOnly(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fc := newFrameConn[*pb.CallBatch, pb.ReplyBatch](a)
	go fc.Recv() //nolint:errcheck // ends when the pipe closes
	if _, err := b.Write(binary.BigEndian.AppendUint32(nil, 1000)); err != nil {
		t.Fatal(err)
	}
	for range 8 { // 800 ms of a frame trickling in
		time.Sleep(100 * time.Millisecond)
		if _, err := b.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		if d := fc.stalledFor(); d > 300*time.Millisecond {
			t.Fatalf("stalled for %v while bytes kept coming", d)
		}
	}
	time.Sleep(600 * time.Millisecond)
	if d := fc.stalledFor(); d < 500*time.Millisecond {
		t.Fatalf("stalled for %v after 600 ms of silence mid-frame", d)
	}
}
