package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStartRestartStats(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetStats(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Get(ctx, "k").Err(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.CommandStats()
	if err != nil {
		t.Fatal(err)
	}
	if st["get"] != 3 {
		t.Fatalf("get calls = %d, want 3 (stats %v)", st["get"], st)
	}
	s.Restart(50 * time.Millisecond)
	// No persistence: the restarted server is empty, and the old client
	// reconnects on its own.
	var n int64
	for i := 0; i < 20; i++ {
		if n, err = c.Exists(ctx, "k").Result(); err == nil {
			break
		}
	}
	if err != nil || n != 0 {
		t.Fatalf("after restart: exists = %d, %v; want 0, nil", n, err)
	}
}

func TestParseCommandStats(t *testing.T) {
	st, err := ParseCommandStats("# Commandstats\r\ncmdstat_get:calls=7,usec=10,usec_per_call=1.4,rejected_calls=0,failed_calls=0\r\ncmdstat_config|resetstat:calls=1,usec=1\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if st["get"] != 7 || st["config|resetstat"] != 1 || len(st) != 2 {
		t.Fatalf("got %v", st)
	}
	if _, err := ParseCommandStats("cmdstat_get:usec=1"); err == nil {
		t.Fatal("missing calls= accepted")
	}
}
