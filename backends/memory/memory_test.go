package memory_test

import (
	"context"
	"errors"
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
