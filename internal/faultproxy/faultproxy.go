// Package faultproxy is a fault-injecting TCP proxy for regioncache's tests:
// it listens on a loopback port and forwards every connection to a target
// server, and can stall, slow down or drop the connections it carries, so
// that tests can put a real client and a real server through a stall longer
// than a lock's lease, a half-open connection or slow replies.
//
// Faults apply to the bytes in flight, in both directions, on every current
// and future connection:
//
//   - Stall holds every byte (connections stay open, nothing is delivered)
//     until Resume: a stalled network or a hung peer.
//   - SetDelay delays each chunk by a fixed duration: a slow link.
//   - Blackhole discards every byte while keeping connections open: a
//     half-open connection whose peer will never answer.
//   - DropAll closes every current connection abruptly.
//
// Every loop in the proxy is bounded by its connections' lifetimes; Close
// ends them all.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its loopback address to a target.
type Proxy struct {
	target string
	ln     net.Listener

	mu        sync.Mutex
	cond      *sync.Cond // broadcast when stalled changes or the proxy closes
	stalled   bool
	blackhole bool
	delay     time.Duration
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// New starts a proxy on a free 127.0.0.1 port that forwards to target
// ("host:port").
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target: want \"host:port\", got %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's "127.0.0.1:port" address, for clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall holds every byte in flight until Resume.
func (p *Proxy) Stall() { p.set(func() { p.stalled = true }) }

// Resume ends a Stall and a Blackhole: held bytes are delivered (discarded
// bytes are gone).
func (p *Proxy) Resume() { p.set(func() { p.stalled, p.blackhole = false, false }) }

// Blackhole discards every byte from now on, keeping the connections open,
// until Resume.
func (p *Proxy) Blackhole() { p.set(func() { p.blackhole = true }) }

// SetDelay delays every chunk forwarded from now on by d (0: none).
func (p *Proxy) SetDelay(d time.Duration) { p.set(func() { p.delay = d }) }

func (p *Proxy) set(f func()) {
	p.mu.Lock()
	f()
	p.mu.Unlock()
	p.cond.Broadcast()
}

// DropAll closes every current connection (both sides) at once. New
// connections are accepted as before.
func (p *Proxy) DropAll() {
	p.mu.Lock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, as a crashed peer or a middlebox would
		}
		_ = c.Close()
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Conns returns how many connections (client side) the proxy carries now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.cond.Broadcast()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.conns[s] = struct{}{}
		p.mu.Unlock()
		var once sync.Once
		end := func() {
			once.Do(func() {
				_ = c.Close()
				_ = s.Close()
				p.mu.Lock()
				delete(p.conns, c)
				delete(p.conns, s)
				p.mu.Unlock()
			})
		}
		p.wg.Add(2)
		go p.pipe(c, s, end)
		go p.pipe(s, c, end)
	}
}

// pipe copies src to dst, applying the current faults to each chunk, until
// either side ends.
func (p *Proxy) pipe(src, dst net.Conn, end func()) {
	defer p.wg.Done()
	defer end()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.forward(dst, buf[:n]) {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// has reports whether c is a current connection; p.mu is held.
func (p *Proxy) has(c net.Conn) bool {
	_, ok := p.conns[c]
	return ok
}

// forward applies the faults to one chunk and writes it; it reports false
// when the connection should end.
func (p *Proxy) forward(dst net.Conn, b []byte) bool {
	p.mu.Lock()
	for p.stalled && !p.closed && p.has(dst) {
		p.cond.Wait()
	}
	closed, hole, delay := p.closed || !p.has(dst), p.blackhole, p.delay
	p.mu.Unlock()
	if closed {
		return false
	}
	if hole {
		return true
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	_, err := dst.Write(b)
	return err == nil
}
