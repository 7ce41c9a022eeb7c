package strtable

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Readers running during stores, removals and growths only ever see a key's
// own values, and after the writer is done every key reads its last write.
func TestTableConcurrentReadsDuringWrites(t *testing.T) {
	tb := New[string]()
	const keys = 5000
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i = (i + 7) % keys {
				k := strconv.Itoa(i)
				if v := tb.Load(k); v != nil && (*v)[:len(k)+1] != k+"=" {
					bad.Add(1)
				}
			}
		}()
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < keys; i++ {
			k := strconv.Itoa(i)
			v := k + "=" + strconv.Itoa(round)
			tb.Store(k, &v)
		}
		for i := 0; i < keys; i += 3 {
			if tb.Remove(strconv.Itoa(i)) == nil {
				t.Fatalf("remove %d: absent", i)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d reads saw another key's value", bad.Load())
	}
	n := 0
	tb.Range(func(k string, v *string) bool { n++; return true })
	if want := keys - (keys+2)/3; n != want || tb.n != want {
		t.Fatalf("range saw %d entries, count %d; want %d", n, tb.n, want)
	}
	for i := 0; i < keys; i++ {
		k := strconv.Itoa(i)
		v := tb.Load(k)
		if i%3 == 0 {
			if v != nil {
				t.Fatalf("%s: removed but reads %q", k, *v)
			}
			continue
		}
		if v == nil || *v != k+"=2" {
			t.Fatalf("%s: got %v, want its last write", k, v)
		}
	}
	if tb.Remove("absent") != nil {
		t.Fatal("remove of an absent key found something")
	}
	tb.Clear()
	if tb.Load("1") != nil || tb.n != 0 {
		t.Fatal("clear kept entries")
	}
}

// Store and Remove report the value they replace or remove, and Len counts.
func TestStoreReturnsReplaced(t *testing.T) {
	tb := New[int]()
	one, two := 1, 2
	if prev := tb.Store("k", &one); prev != nil {
		t.Fatalf("first store replaced %v", *prev)
	}
	if prev := tb.Store("k", &two); prev != &one {
		t.Fatalf("second store replaced %v, want &one", prev)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tb.Len())
	}
	if got := tb.Remove("k"); got != &two {
		t.Fatalf("Remove = %v, want &two", got)
	}
	if tb.Len() != 0 || tb.Load("k") != nil {
		t.Fatalf("after Remove: Len %d, Load %v", tb.Len(), tb.Load("k"))
	}
}
