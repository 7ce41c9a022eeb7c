//go:build unix

package redistest

import "syscall"

// Stall stops the server's process (SIGSTOP) without killing it: its
// connections stay open and nothing answers, as with a server that hangs
// or a machine that stalls. Resume continues it. Stall fails the test on
// systems without job control signals.
func (s *Server) Stall() { s.signal(syscall.SIGSTOP) }

// Resume continues a server stopped by Stall.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }
