package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer echoes lines until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func TestFaults(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(c, r, "a", 5*time.Second); err != nil || got != "a" {
		t.Fatalf("plain: %q, %v", got, err)
	}

	p.Stall()
	if _, err := roundTrip(c, r, "b", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled: want a read timeout, got %v", err)
	}
	p.Resume() // the held "b" is delivered
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "b\n" {
		t.Fatalf("after resume: %q, %v", line, err)
	}

	p.SetDelay(100 * time.Millisecond)
	start := time.Now()
	if got, err := roundTrip(c, r, "c", 5*time.Second); err != nil || got != "c" {
		t.Fatalf("delayed: %q, %v", got, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("a round trip through a 100ms delay each way took %v", d)
	}
	p.SetDelay(0)

	p.Blackhole()
	if _, err := roundTrip(c, r, "d", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackholed: want a read timeout, got %v", err)
	}
	p.Resume()
	if got, err := roundTrip(c, r, "e", 5*time.Second); err != nil || got != "e" {
		t.Fatalf("after the blackhole: %q, %v (the discarded bytes are gone)", got, err)
	}

	if p.Conns() != 1 {
		t.Fatalf("%d connections, want 1", p.Conns())
	}
	p.DropAll()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("read on a dropped connection succeeded")
	}
	// New connections still work.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, bufio.NewReader(c2), "f", 5*time.Second); err != nil || got != "f" {
		t.Fatalf("new connection after DropAll: %q, %v", got, err)
	}
}

// TestCloseWhileStalled: Close ends connections blocked in a stall.
func TestCloseWhileStalled(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Stall()
	if _, err := c.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the chunk reach the stall (not asserted)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on a stalled connection")
	}
}

func TestBadTarget(t *testing.T) {
	if _, err := New("no-port"); err == nil {
		t.Fatal("New accepted a target without a port")
	}
}
