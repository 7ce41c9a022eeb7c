package collapse

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// joined returns how many callers wait for the read after the one in flight
// for key.
func (g *Group[T]) joined(key string) int {
	g.init()
	st := &g.stripes[maphash.String(g.seed, key)%stripes]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.next == nil {
		return 0
	}
	return st.next.n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// 32 callers of one key make two reads: the one in flight when they came,
// and one read for all of them.
func TestConcurrentCallersMakeTwoReads(t *testing.T) {
	var g Group[int]
	var reads atomic.Int32
	release := make(chan struct{})
	read := func(context.Context) (int, error) {
		n := reads.Add(1)
		if n == 1 {
			<-release
		}
		return int(n), nil
	}
	ctx := context.Background()
	first := make(chan int)
	go func() {
		v, _ := g.Do(ctx, "k", read)
		first <- v
	}()
	waitFor(t, "the first read", func() bool { return reads.Load() == 1 })
	const n = 31
	var wg sync.WaitGroup
	got := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(ctx, "k", read)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	waitFor(t, "31 callers to join", func() bool { return g.joined("k") == n })
	close(release)
	if v := <-first; v != 1 {
		t.Fatalf("first caller got read %d, want 1", v)
	}
	wg.Wait()
	for i, v := range got {
		if v != 2 {
			t.Fatalf("caller %d got read %d, want 2 (the read after it arrived)", i, v)
		}
	}
	if r := reads.Load(); r != 2 {
		t.Fatalf("%d reads, want 2", r)
	}
	g.Wait()
}

// Every caller's result comes from a read that started after the call did:
// a writer bumps a version; each caller notes the version before calling and
// must get at least that version back. Plain sharing of the read in flight
// (singleflight) fails this.
func TestNoResultOlderThanTheCall(t *testing.T) {
	var g Group[int64]
	var version atomic.Int64
	read := func(context.Context) (int64, error) {
		v := version.Load()
		time.Sleep(50 * time.Microsecond) // the round trip
		return v, nil
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				version.Add(1)
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	defer close(stop)
	var wg sync.WaitGroup
	var bad, calls atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				before := version.Load()
				v, err := g.Do(context.Background(), "k", read)
				if err != nil {
					t.Error(err)
					return
				}
				calls.Add(1)
				if v < before {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	g.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d calls got a result older than the call", bad.Load(), calls.Load())
	}
}

// A waiter whose context ends returns at once; the others still get the read.
func TestWaiterContextEnds(t *testing.T) {
	var g Group[string]
	release := make(chan struct{})
	var reads atomic.Int32
	read := func(context.Context) (string, error) {
		if reads.Add(1) == 1 {
			<-release
		}
		return "v", nil
	}
	go g.Do(context.Background(), "k", read)
	waitFor(t, "the first read", func() bool { return reads.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, "k", read)
		errc <- err
	}()
	other := make(chan string, 1)
	go func() {
		v, _ := g.Do(context.Background(), "k", read)
		other <- v
	}()
	waitFor(t, "two callers to join", func() bool { return g.joined("k") == 2 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	close(release)
	if v := <-other; v != "v" {
		t.Fatalf("other waiter got %q", v)
	}
	g.Wait()
}

// A read that panics while serving waiting callers fails them with an error
// and leaves the key usable.
func TestPanickingReadForWaiters(t *testing.T) {
	var g Group[string]
	release := make(chan struct{})
	var reads atomic.Int32
	read := func(context.Context) (string, error) {
		switch reads.Add(1) {
		case 1:
			<-release
			return "first", nil
		case 2:
			panic("boom")
		}
		return "later", nil
	}
	go g.Do(context.Background(), "k", read)
	waitFor(t, "the first read", func() bool { return reads.Load() == 1 })
	errc := make(chan error, 1)
	go func() {
		_, err := g.Do(context.Background(), "k", read)
		errc <- err
	}()
	waitFor(t, "a caller to join", func() bool { return g.joined("k") == 1 })
	close(release)
	if err := <-errc; err == nil {
		t.Fatal("waiter of a panicking read got no error")
	}
	g.Wait()
	if v, err := g.Do(context.Background(), "k", read); v != "later" || err != nil {
		t.Fatalf("after the panic: %q, %v", v, err)
	}
}

// Keys that share a stripe do not wait for each other.
func TestOtherKeysAreNotHeld(t *testing.T) {
	var g Group[string]
	block := make(chan struct{})
	started := make(chan struct{})
	go g.Do(context.Background(), "held", func(context.Context) (string, error) {
		close(started)
		<-block
		return "", nil
	})
	<-started
	defer close(block)
	for i := range 4 * stripes {
		k := "other" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		done := make(chan struct{})
		go func() {
			g.Do(context.Background(), k, func(context.Context) (string, error) { return k, nil })
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("key %q waited for a read of another key", k)
		}
	}
}

// Close fails the callers waiting for a read that has not started, ends the
// context of a read made for waiting callers, makes later calls return its
// error without reading, and Wait then returns once the reads in flight
// end; Close racing calls never panics.
func TestClose(t *testing.T) {
	errClosed := errors.New("closed")
	t.Run("waiting callers", func(t *testing.T) {
		var g Group[string]
		release := make(chan struct{})
		var reads atomic.Int32
		read := func(context.Context) (string, error) {
			reads.Add(1)
			<-release
			return "v", nil
		}
		first := make(chan string, 1)
		go func() { v, _ := g.Do(context.Background(), "k", read); first <- v }()
		waitFor(t, "the first read", func() bool { return reads.Load() == 1 })
		errc := make(chan error, 1)
		go func() { _, err := g.Do(context.Background(), "k", read); errc <- err }()
		waitFor(t, "a caller to join", func() bool { return g.joined("k") == 1 })
		g.Close(errClosed)
		if err := <-errc; !errors.Is(err, errClosed) {
			t.Fatalf("waiting caller: %v, want the Close error", err)
		}
		if _, err := g.Do(context.Background(), "k", read); !errors.Is(err, errClosed) {
			t.Fatalf("Do after Close: %v", err)
		}
		waited := make(chan struct{})
		go func() { g.Wait(); close(waited) }()
		select {
		case <-waited:
			t.Fatal("Wait returned while a read was in flight")
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		<-waited
		if v := <-first; v != "v" {
			t.Fatalf("the read in flight got %q", v)
		}
		if n := reads.Load(); n != 1 {
			t.Fatalf("%d reads, want 1 (none after Close)", n)
		}
	})
	t.Run("read for waiting callers", func(t *testing.T) {
		var g Group[string]
		release := make(chan struct{})
		var reads atomic.Int32
		batchStarted := make(chan struct{})
		read := func(ctx context.Context) (string, error) {
			switch reads.Add(1) {
			case 1:
				<-release
				return "first", nil
			default:
				close(batchStarted)
				<-ctx.Done() // a read that would hang but for Close
				return "", ctx.Err()
			}
		}
		go g.Do(context.Background(), "k", read)
		waitFor(t, "the first read", func() bool { return reads.Load() == 1 })
		errc := make(chan error, 1)
		go func() { _, err := g.Do(context.Background(), "k", read); errc <- err }()
		waitFor(t, "a caller to join", func() bool { return g.joined("k") == 1 })
		close(release)
		<-batchStarted
		g.Close(errClosed)
		g.Wait()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller of the read Close ended: %v, want context.Canceled", err)
		}
	})
	t.Run("racing", func(t *testing.T) {
		for range 300 {
			var g Group[int]
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 20 {
						_, _ = g.Do(context.Background(), "k", func(context.Context) (int, error) {
							time.Sleep(10 * time.Microsecond)
							return 1, nil
						})
					}
				})
			}
			time.Sleep(50 * time.Microsecond)
			g.Close(errClosed)
			g.Wait()
			wg.Wait()
		}
	})
}
