package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
)

func present(t *testing.T, b backends.Backend, keys ...string) string {
	t.Helper()
	var got []string
	for _, k := range keys {
		if _, err := b.Get(context.Background(), k); err == nil {
			got = append(got, k)
		} else if !errors.Is(err, backends.ErrNotFound) {
			t.Fatal(err)
		}
	}
	return strings.Join(got, ",")
}

// TestMaxSizeEvictsLRU: max_size counts key plus encoded payload bytes and
// evicts the least recently used entries until the new one fits.
func TestMaxSizeEvictsLRU(t *testing.T) {
	b, err := memory.Open(backends.Args{"max_size": "30"}) // a string size, as from a config file
	if err != nil {
		t.Fatal(err)
	}
	if b.KeepsValues() {
		t.Fatal("max_size without a cost function keeps Go values, whose size it cannot count")
	}
	ctx := context.Background()
	set := func(k string, n int) {
		t.Helper()
		if err := b.Set(ctx, k, backends.Entry{Payload: make([]byte, n), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	set("a", 9) // 10 bytes
	set("b", 9) // 20
	set("c", 9) // 30: at the bound, nothing evicted
	if got := present(t, b, "a", "b", "c"); got != "a,b,c" {
		t.Fatalf("at the bound: %s", got)
	}
	b.Get(ctx, "a") // b is now the least recently used
	set("d", 4)     // 35 > 30: b goes
	if got := present(t, b, "a", "b", "c", "d"); got != "a,c,d" {
		t.Fatalf("after d: %s, want a,c,d (b least recently used)", got)
	}
	set("c", 19) // replacing c grows it: 10+20+5 = 35 > 30; the LRU entry (a, read before d) goes
	if got := present(t, b, "a", "c", "d"); got != "c,d" {
		t.Fatalf("after growing c: %s", got)
	}
	set("big", 40) // alone over the bound: not kept, nothing else evicted
	if got := present(t, b, "big", "c", "d"); got != "c,d" {
		t.Fatalf("after an oversized entry: %s", got)
	}
	set("c", 40) // an oversized replacement removes the old value too
	if got := present(t, b, "c", "d"); got != "d" {
		t.Fatalf("after an oversized replacement: %s", got)
	}
	// Deletes give the bytes back: four 10-byte entries fit after d is gone.
	b.Delete(ctx, "d")
	for _, k := range []string{"w", "x", "y"} {
		set(k, 9)
	}
	if got := present(t, b, "w", "x", "y"); got != "w,x,y" {
		t.Fatalf("after delete: %s", got)
	}
}

// TestMaxSizeCost: a user cost function counts Go values, which are then kept
// unencoded; both bounds apply together.
func TestMaxSizeCost(t *testing.T) {
	b, err := memory.OpenOptions(memory.Options{MaxSize: 100, MaxEntries: 3,
		Cost: func(key string, e backends.Entry) int64 { return int64(len(e.Value.([]int)) * 8) }})
	if err != nil {
		t.Fatal(err)
	}
	if !b.KeepsValues() {
		t.Fatal("a cost function should leave Go values unencoded")
	}
	ctx := context.Background()
	for i, n := range []int{5, 5} { // 40 + 40
		b.Set(ctx, fmt.Sprint(i), backends.Entry{Value: make([]int, n)})
	}
	b.Set(ctx, "2", backends.Entry{Value: make([]int, 3)}) // 104 > 100: "0" goes
	if got := present(t, b, "0", "1", "2"); got != "1,2" {
		t.Fatalf("byte bound with a cost function: %s", got)
	}
	b.Set(ctx, "3", backends.Entry{Value: []int{}})
	b.Set(ctx, "4", backends.Entry{Value: []int{}}) // 4 entries > 3: "1" goes
	if got := present(t, b, "1", "2", "3", "4"); got != "2,3,4" {
		t.Fatalf("count bound beside the byte bound: %s", got)
	}
}

func TestMaxSizeBadArgs(t *testing.T) {
	for _, v := range []any{-1, "lots", "-5MiB", true} {
		_, err := memory.Open(backends.Args{"max_size": v})
		if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), "max_size") {
			t.Errorf("max_size %#v: %v", v, err)
		}
	}
	if _, err := memory.OpenOptions(memory.Options{MaxSize: -1}); !errors.Is(err, backends.ErrBadArgument) {
		t.Errorf("Options.MaxSize -1: %v", err)
	}
}

// TestMaxSizeThroughRegion: a region over a byte-bounded memory backend keeps
// the most recently used values within the bound and recreates evicted ones.
func TestMaxSizeThroughRegion(t *testing.T) {
	r, err := region.Open("memory", backends.Args{"max_size": 3 * (len("k0") + 100)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	calls := 0
	load := func(k string) string {
		v, err := region.GetOrCreate(ctx, r, k, func(context.Context) (string, error) {
			calls++
			return strings.Repeat(k[1:], 100), nil
		})
		if err != nil || v != strings.Repeat(k[1:], 100) {
			t.Fatalf("%s: %q, %v", k, v, err)
		}
		return v
	}
	for _, k := range []string{"k0", "k1", "k2", "k0", "k3"} { // k3 evicts k1, the least recently used
		load(k)
	}
	if calls != 4 {
		t.Fatalf("%d creations, want 4", calls)
	}
	for _, k := range []string{"k0", "k2", "k3"} {
		if _, err := region.Get[string](ctx, r, k); err != nil {
			t.Fatalf("%s evicted: %v", k, err)
		}
	}
	if _, err := region.Get[string](ctx, r, "k1"); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("k1 not evicted: %v", err)
	}
}

// TestMaxSizeConcurrent: writers, deleters, tag eviction and readers at once
// (under -race); afterwards the entries still fit the bound, and every
// entry read was whole.
func TestMaxSizeConcurrent(t *testing.T) {
	const bound = 4096
	b, err := memory.Open(backends.Args{"max_size": bound})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := fmt.Sprint("k", (i*7+g)%97)
				n := (i * 13) % 300
				p := []byte(strings.Repeat(string(rune('a'+n%26)), n))
				switch i % 10 {
				case 0:
					b.Delete(ctx, k)
				case 1:
					b.EvictTag(ctx, "t")
				case 2, 3, 4:
					if e, err := b.Get(ctx, k); err == nil && strings.Trim(string(e.Payload), string(rune(e.Payload[0]))) != "" {
						t.Errorf("torn entry %q", e.Payload)
					}
				default:
					if len(p) == 0 {
						p = []byte("z")
					}
					b.Set(ctx, k, backends.Entry{Payload: p, Tags: []string{"t"}[:i%2]})
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	b.List(ctx, func(in backends.EntryInfo) error { total += int64(len(in.Key)) + in.Size; return nil })
	if total > bound || total == 0 {
		t.Fatalf("entries total %d bytes, bound %d", total, bound)
	}
}
