package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
)

func TestLRUBound(t *testing.T) {
	b, err := memory.Open(backends.Args{"max_entries": 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := func(k string) { b.Set(ctx, k, backends.Entry{Payload: []byte(k), Created: time.Now()}) }
	set("a")
	set("b")
	b.Get(ctx, "a") // a is now more recent than b
	set("c")        // evicts b
	if _, err := b.Get(ctx, "b"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatal("least recently used entry survived")
	}
	for _, k := range []string{"a", "c"} {
		if _, err := b.Get(ctx, k); err != nil {
			t.Fatalf("%s evicted: %v", k, err)
		}
	}
}

func TestCopyValues(t *testing.T) {
	b, _ := memory.Open(backends.Args{"copy_values": true})
	if b.KeepsValues() || backends.KeepsValues(b) {
		t.Fatal("copy_values backend claims to keep values")
	}
	ctx := context.Background()
	p := []byte("abc")
	b.Set(ctx, "k", backends.Entry{Payload: p, Value: "ignored"})
	p[0] = 'X'
	e, _ := b.Get(ctx, "k")
	if string(e.Payload) != "abc" || e.Value != nil {
		t.Fatalf("stored entry aliases the caller's slice or kept a value: %+v", e)
	}
	if !backends.KeepsValues(memory.New()) {
		t.Fatal("default memory backend does not keep values")
	}
}

func TestBadArgs(t *testing.T) {
	if _, err := memory.Open(backends.Args{"max_entries": -1}); !errors.Is(err, backends.ErrBadArgument) {
		t.Fatal(err)
	}
}

// TestReadsDuringWrites runs lock-free reads against writers, tag eviction
// and Close under the race detector, in both modes.
func TestReadsDuringWrites(t *testing.T) {
	for _, args := range []backends.Args{nil, {"max_entries": 4}} {
		b, _ := memory.Open(args)
		ctx := context.Background()
		done := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					if e, err := b.Get(ctx, "k"); err == nil && e.Value.(int) < 0 {
						t.Error("torn entry")
					}
					b.GetMulti(ctx, []string{"k", "j"})
				}
			}()
		}
		for i := 0; i < 2000; i++ {
			b.Set(ctx, "k", backends.Entry{Value: i, Tags: []string{"t"}})
			b.SetMulti(ctx, []string{"j"}, []backends.Entry{{Value: i}})
			if i%100 == 0 {
				b.EvictTag(ctx, "t")
				b.StorageStats(ctx)
				b.List(ctx, func(backends.EntryInfo) error { return nil })
			}
		}
		b.Close()
		close(done)
		wg.Wait()
		if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrClosed) {
			t.Fatalf("Get after Close: %v", err)
		}
		if _, err := b.GetMulti(ctx, []string{"k"}); !errors.Is(err, backends.ErrClosed) {
			t.Fatalf("GetMulti after Close: %v", err)
		}
	}
}

func TestUnboundedGetAllocatesNothing(t *testing.T) {
	b := memory.New()
	ctx := context.Background()
	b.Set(ctx, "k", backends.Entry{Value: "v", Tags: []string{"t"}})
	if n := testing.AllocsPerRun(100, func() { b.Get(ctx, "k") }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
	b.Set(ctx, "a", backends.Entry{Value: 1, Tags: []string{"t"}})
	if n, _ := b.EvictTag(ctx, "t"); n != 2 {
		t.Fatalf("EvictTag evicted %d, want 2", n)
	}
	if s, _ := b.StorageStats(ctx); s.Entries != 0 {
		t.Fatalf("%d entries left after EvictTag", s.Entries)
	}
}
