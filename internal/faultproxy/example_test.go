package faultproxy_test

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/regioncache/regioncache/internal/faultproxy"
)

// A stalled proxy holds a request until Resume; the client times out in
// between, as it would against a hung server.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() { // an echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte(line))
	}()
	p, _ := faultproxy.New(ln.Addr().String())
	defer p.Close()
	c, _ := net.Dial("tcp", p.Addr())
	defer c.Close()
	r := bufio.NewReader(c)

	p.Stall()
	_, _ = c.Write([]byte("hello\n"))
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := r.ReadString('\n')
	fmt.Println("while stalled:", err.(net.Error).Timeout())

	p.Resume()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := r.ReadString('\n')
	fmt.Printf("after resume: %q\n", line)
	// Output:
	// while stalled: true
	// after resume: "hello\n"
}
