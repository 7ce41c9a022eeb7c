package memory

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Readers running during stores, removals and growths only ever see a key's
// own values, and after the writer is done every key reads its last write.
func TestTableConcurrentReadsDuringWrites(t *testing.T) {
	tb := newTable[string]()
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
				if v := tb.load(k); v != nil && (*v)[:len(k)+1] != k+"=" {
					bad.Add(1)
				}
			}
		}()
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < keys; i++ {
			k := strconv.Itoa(i)
			v := k + "=" + strconv.Itoa(round)
			tb.store(k, &v)
		}
		for i := 0; i < keys; i += 3 {
			if tb.remove(strconv.Itoa(i)) == nil {
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
	tb.rangeAll(func(k string, v *string) bool { n++; return true })
	if want := keys - (keys+2)/3; n != want || tb.n != want {
		t.Fatalf("range saw %d entries, count %d; want %d", n, tb.n, want)
	}
	for i := 0; i < keys; i++ {
		k := strconv.Itoa(i)
		v := tb.load(k)
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
	if tb.remove("absent") != nil {
		t.Fatal("remove of an absent key found something")
	}
	tb.clear()
	if tb.load("1") != nil || tb.n != 0 {
		t.Fatal("clear kept entries")
	}
}
