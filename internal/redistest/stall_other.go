//go:build !unix

package redistest

// Stall is not available without Unix job control signals: it fails the
// test.
func (s *Server) Stall() { s.tb.Helper(); s.tb.Fatal("redistest: Stall needs SIGSTOP (Unix)") }

// Resume is not available without Unix job control signals: it fails the
// test.
func (s *Server) Resume() { s.tb.Helper(); s.tb.Fatal("redistest: Resume needs SIGCONT (Unix)") }
