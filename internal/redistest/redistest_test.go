package redistest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	cc := c.Client()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		k := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := cc.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.MasterFor("kaa")
	if err != nil {
		t.Fatal(err)
	}
	m.Kill()
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatalf("after killing %s: %v", m.Addr(), err)
	}
	m2, err := c.MasterFor("kaa")
	if err != nil || m2 == m {
		t.Fatalf("master of kaa after fail-over: %v, %v", m2, err)
	}
	// The client learns the new slot map after a failed call or two.
	var err2 error
	for i := 0; i < 50; i++ {
		// A write not yet replicated may be gone: asynchronous replication.
		if err2 = cc.Get(ctx, "kaa").Err(); err2 == nil || errors.Is(err2, redis.Nil) {
			break
		}
		cc.ReloadState(ctx)
		time.Sleep(100 * time.Millisecond)
	}
	if err2 != nil && !errors.Is(err2, redis.Nil) {
		t.Fatalf("get after fail-over: %v", err2)
	}
}

func TestSentinel(t *testing.T) {
	s := StartSentinel(t)
	m, err := s.Master()
	if err != nil || m != s.Servers[0] {
		t.Fatalf("master %v, %v; want the first server", m, err)
	}
	m.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m2, err := s.Master(); err == nil && m2 == s.Servers[1] {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.WaitReadyNoReplica(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}
