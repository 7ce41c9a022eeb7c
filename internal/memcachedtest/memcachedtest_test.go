package memcachedtest

import "testing"

func TestStartRestartStats(t *testing.T) {
	s := Start(t)
	st, err := s.Stats()
	if err != nil || st["pid"] == "" {
		t.Fatalf("stats: %v, %v", st, err)
	}
	s.Restart()
	st2, err := s.Stats()
	if err != nil || st2["pid"] == st["pid"] {
		t.Fatalf("after restart: pid %s (before %s), %v", st2["pid"], st["pid"], err)
	}
}
