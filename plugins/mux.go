package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// mux is the host end of a Calls stream (protocol version 2): small Get,
// Set and Delete calls travel on one long-lived stream per plugin process,
// each with an id, instead of paying a unary round trip (a new HTTP/2
// stream, headers and trailers) apiece; calls that wait together are sent
// in one message. A reader goroutine hands each reply to its caller; replies
// with an id nobody waits for (a cancelled call's, or a lying plugin's) are
// dropped. The stream breaks when the process dies, and the next call
// opens a new one.
type mux struct {
	carrier callCarrier
	out     *combiner[*pb.Call]
	cancel  func()        // ends the carrier
	done    chan struct{} // closed when the stream broke

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *pb.Reply
	err     error // why the stream broke
}

func callSize(c *pb.Call) int { return proto.Size(c) }

// stallLimit is how long the rest of a half-received reply may fail to
// arrive before a caller that gives up on its own reply breaks the carrier:
// a plugin writes a reply at once, and its bytes keep coming unless it
// stalls mid-write.
const stallLimit = 500 * time.Millisecond

// errStalled breaks a carrier whose plugin stopped mid-reply. It is not
// the plugin's exit: the next call opens a new carrier to the same process.
var errStalled = errors.New("the plugin stopped in the middle of a reply")

// callCarrier carries the host's call batches and the plugin's replies: a
// Calls stream, or a channel (see channel.go).
type callCarrier interface {
	Send(*pb.CallBatch) error
	Recv() (*pb.ReplyBatch, error)
}

// newMux opens a Calls stream on c.
func newMux(c pb.BackendClient) (*mux, error) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Calls(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return newMuxOn(st, cancel), nil
}

// newMuxOn runs a mux over cc; stop ends cc (and with it a blocked Send or
// Recv).
func newMuxOn(cc callCarrier, stop func()) *mux {
	m := &mux{carrier: cc, cancel: stop, done: make(chan struct{}), pending: make(map[uint64]chan *pb.Reply)}
	m.out = newCombiner(func(cs []*pb.Call) error {
		err := cc.Send(&pb.CallBatch{Calls: cs})
		if err != nil {
			m.broke(err)
		}
		return err
	}, callSize)
	go m.read(cc)
	return m
}

func (m *mux) read(cc callCarrier) {
	for {
		batch, err := cc.Recv()
		if err != nil {
			m.broke(err)
			return
		}
		m.mu.Lock()
		for _, r := range batch.Replies {
			if ch, ok := m.pending[r.Id]; ok {
				delete(m.pending, r.Id)
				ch <- r // buffered: never blocks
			}
		}
		m.mu.Unlock()
	}
}

// broke records why the stream ended and fails the calls waiting on it.
func (m *mux) broke(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return
	}
	if err == nil {
		err = fmt.Errorf("%w: the call stream ended", ErrPluginExited)
	}
	m.err = err
	m.pending = nil
	close(m.done)
	m.cancel()
	m.out.fail(err)
}

// broken reports whether the stream ended.
func (m *mux) broken() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// close ends the stream.
func (m *mux) close() { m.broke(fmt.Errorf("%w: closed", ErrPluginExited)) }

// do sends c and waits for its reply, or for ctx to end, or for the stream
// to break.
func (m *mux) do(ctx context.Context, c *pb.Call) (*pb.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // nothing is sent for a call already over
	}
	ch := make(chan *pb.Reply, 1)
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return nil, err
	}
	m.next++
	id := m.next
	c.Id = id
	m.pending[id] = ch
	m.mu.Unlock()
	if ctx.Done() != nil {
		// The caller sends its call, and the calls queued meanwhile, itself
		// (one goroutine hand-off less per call). A plugin that stops
		// reading blocks that send: when the caller's context ends while it
		// is still sending, and the send is still not done stallLimit later,
		// the stream is broken, which ends the send. (A send that ends in
		// time was only a write in progress, not a plugin that stopped.)
		stop := context.AfterFunc(ctx, func() {
			for deadline := time.Now().Add(stallLimit); m.out.sender.Load() == id; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					m.broke(fmt.Errorf("%w: the plugin stopped reading its calls", ErrPluginExited))
					return
				}
			}
		})
		defer stop()
	}
	if err := m.out.add(c, id); err != nil {
		m.forget(id)
		<-m.done
		return nil, m.err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-m.done:
		select {
		case r := <-ch: // answered just before the break
			return r, nil
		default:
		}
		return nil, m.err
	case <-ctx.Done():
		if sc, ok := m.carrier.(interface{ stalledFor() time.Duration }); ok && sc.stalledFor() > stallLimit {
			// The plugin stopped mid-reply: every later reply is behind
			// that one. A new carrier serves the next call.
			m.broke(errStalled)
			return nil, ctx.Err()
		}
		if m.forget(id) {
			go m.out.add(&pb.Call{Id: id, Cancel: true}, 0) //nolint:errcheck // best effort
		}
		return nil, ctx.Err()
	}
}

// forget stops waiting for id; it reports whether the reply had not come.
func (m *mux) forget(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.pending[id]
	delete(m.pending, id)
	return ok
}
