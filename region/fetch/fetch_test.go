package fetch_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	_ "github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/fetch"
)

// server is an httptest server serving one body with an ETag and a
// Last-Modified, answering conditional requests, and counting what it did.
type server struct {
	*httptest.Server
	mu           sync.Mutex
	body         []byte
	etag         string
	lastModified string
	delay        time.Duration // before the header

	requests    atomic.Int64 // all requests
	conditional atomic.Int64 // requests with If-None-Match or If-Modified-Since
	notModified atomic.Int64 // 304 answers
	bodyBytes   atomic.Int64 // body bytes written
}

func newServer(t *testing.T, body string) *server {
	s := &server{}
	s.set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = []byte(body)
	sum := sha256.Sum256(s.body)
	s.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	s.lastModified = time.Now().UTC().Format(http.TimeFormat)
}

func (s *server) setDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

func (s *server) serve(w http.ResponseWriter, req *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	body, etag, lm, delay := s.body, s.etag, s.lastModified, s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	inm, ims := req.Header.Get("If-None-Match"), req.Header.Get("If-Modified-Since")
	if inm != "" || ims != "" {
		s.conditional.Add(1)
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", lm)
	if (inm != "" && inm == etag) || (inm == "" && ims != "" && ims == lm) {
		s.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	n, _ := w.Write(body)
	s.bodyBytes.Add(int64(n))
}

func openRawfs(t *testing.T, opts ...region.Option) (*region.Region, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tempLeft lists the files left in rawfs's temporary directory.
func tempLeft(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(filepath.Join(dir, "tmp"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func TestFetchCachesAndRevalidates(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, strings.Repeat("payload ", 1000))
	r, dir := openRawfs(t)
	exp := fetch.WithCallOptions(region.ExpireAfter(100 * time.Millisecond))

	f, err := fetch.File(ctx, r, srv.URL+"/data.csv", exp)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != strings.Repeat("payload ", 1000) {
		t.Fatalf("first fetch read %d bytes", len(got))
	}
	// Fresh: no request.
	f, err = fetch.File(ctx, r, srv.URL+"/data.csv", exp)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests after a fresh hit, want 1", n)
	}

	// Stale, unchanged on the server: one conditional request, a 304, no
	// body bytes, and the entry is fresh again.
	time.Sleep(150 * time.Millisecond)
	bodyBefore := srv.bodyBytes.Load()
	for range 3 {
		f, err = fetch.File(ctx, r, srv.URL+"/data.csv", exp, fetch.WithCallOptions(region.WaitForFresh()))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f); got != strings.Repeat("payload ", 1000) {
			t.Fatalf("after revalidation read %d bytes", len(got))
		}
	}
	if c, nm, b := srv.conditional.Load(), srv.notModified.Load(), srv.bodyBytes.Load()-bodyBefore; c != 1 || nm != 1 || b != 0 {
		t.Fatalf("revalidation: %d conditional requests, %d 304s, %d body bytes; want 1, 1, 0", c, nm, b)
	}

	// Changed on the server: the conditional request gets the new body.
	srv.set("version two")
	time.Sleep(150 * time.Millisecond)
	f, err = fetch.File(ctx, r, srv.URL+"/data.csv", exp, fetch.WithCallOptions(region.WaitForFresh()))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "version two" {
		t.Fatalf("after a change read %q", got)
	}
	if c, nm := srv.conditional.Load(), srv.notModified.Load(); c != 2 || nm != 1 {
		t.Fatalf("%d conditional requests and %d 304s, want 2 and 1", c, nm)
	}
	if left := tempLeft(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Stale callers that do not wait are served the previous body while one
// of them revalidates.
func TestStaleServedWhileRevalidating(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, "old body")
	r, _ := openRawfs(t)
	exp := fetch.WithCallOptions(region.ExpireAfter(50 * time.Millisecond))
	f, err := fetch.File(ctx, r, srv.URL, exp)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	srv.set("new body")
	srv.setDelay(300 * time.Millisecond)
	time.Sleep(80 * time.Millisecond)
	var wg sync.WaitGroup
	var old, updated atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fetch.File(ctx, r, srv.URL, exp)
			if err != nil {
				t.Error(err)
				return
			}
			switch got := readAll(t, f); got {
			case "old body":
				old.Add(1)
			case "new body":
				updated.Add(1)
			default:
				t.Errorf("read %q", got)
			}
		}()
	}
	wg.Wait()
	if updated.Load() != 1 || old.Load() != 7 {
		t.Fatalf("%d callers got the new body and %d the stale one; want 1 (the revalidating caller) and 7", updated.Load(), old.Load())
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestLastModifiedOnly(t *testing.T) {
	ctx := context.Background()
	var requests, conditional atomic.Int64
	lm := time.Now().UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		w.Header().Set("Last-Modified", lm)
		if req.Header.Get("If-None-Match") != "" {
			t.Errorf("If-None-Match sent without an ETag")
		}
		if req.Header.Get("If-Modified-Since") == lm {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body")
	}))
	defer srv.Close()
	r, _ := openRawfs(t)
	for range 2 {
		f, err := fetch.File(ctx, r, srv.URL, fetch.WithCallOptions(region.ExpireAfter(0), region.WaitForFresh()))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f); got != "body" {
			t.Fatalf("read %q", got)
		}
	}
	if requests.Load() != 2 || conditional.Load() != 1 {
		t.Fatalf("%d requests, %d conditional; want 2, 1", requests.Load(), conditional.Load())
	}
}

func TestOneDownloadForManyGoroutines(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, strings.Repeat("x", 1<<20))
	srv.setDelay(100 * time.Millisecond)
	r, _ := openRawfs(t)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fetch.File(ctx, r, srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			if got := readAll(t, f); len(got) != 1<<20 {
				t.Errorf("read %d bytes", len(got))
			}
		}()
	}
	wg.Wait()
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("32 goroutines made %d requests, want 1", n)
	}
}

// fileTransport is a client that would follow file: URLs if asked to: the
// refusal must come from fetch, not from the transport's limits.
func fileClient(root string) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.RegisterProtocol("file", http.NewFileTransport(http.Dir(root)))
	return &http.Client{Transport: t}
}

func TestRedirectToFileRefused(t *testing.T) {
	ctx := context.Background()
	secretDir := t.TempDir()
	os.WriteFile(filepath.Join(secretDir, "secret"), []byte("top secret"), 0o600)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		http.Redirect(w, req, "file:///secret", http.StatusFound)
	}))
	defer srv.Close()
	r, dir := openRawfs(t)
	for _, c := range []struct {
		name string
		opts []fetch.Option
	}{{"default client", nil}, {"client with a file transport", []fetch.Option{fetch.Client(fileClient(secretDir))}}} {
		t.Run(c.name, func(t *testing.T) {
			before := requests.Load()
			for range 2 {
				f, err := fetch.File(ctx, r, srv.URL, c.opts...)
				if err == nil {
					got := readAll(t, f)
					t.Fatalf("redirect to file: followed, read %q", got)
				}
				if !errors.Is(err, fetch.ErrRefused) || !strings.Contains(err.Error(), "file:") {
					t.Fatalf("error %v, want ErrRefused naming file:", err)
				}
			}
			if n := requests.Load() - before; n != 2 {
				t.Fatalf("%d requests for 2 calls: a refused fetch must not be cached", n)
			}
		})
	}
	if left := tempLeft(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// Without the redirect the same client does serve file: — so the test
	// above would have caught fetch following it.
	resp, err := fileClient(secretDir).Get("file:///secret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "top secret" {
		t.Fatalf("file transport control read %q", b)
	}
}

func TestHTTPSDowngradeRefused(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "plain") }))
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, plain.URL, http.StatusFound)
	}))
	defer tlsSrv.Close()
	r, _ := openRawfs(t)
	_, err := fetch.File(context.Background(), r, tlsSrv.URL, fetch.Client(tlsSrv.Client()))
	if !errors.Is(err, fetch.ErrRefused) {
		t.Fatalf("https to http redirect: %v, want ErrRefused", err)
	}
}

func TestBodyOverMaxSizeRefused(t *testing.T) {
	ctx := context.Background()
	const limit = 64 << 10
	big := bytes.Repeat([]byte("z"), 3*limit)
	var requests atomic.Int64
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		if req.URL.Path == "/declared" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		}
		for i := 0; i < len(big); i += 4096 {
			n, err := w.Write(big[i : i+4096])
			sent.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	r, dir := openRawfs(t)
	for _, path := range []string{"/declared", "/chunked"} {
		for range 2 {
			f, err := fetch.File(ctx, r, srv.URL+path, fetch.MaxSize(limit))
			if err == nil {
				f.Close()
				t.Fatalf("%s: a body over MaxSize was accepted", path)
			}
			if !errors.Is(err, fetch.ErrTooLarge) {
				t.Fatalf("%s: %v, want ErrTooLarge", path, err)
			}
		}
	}
	if n := requests.Load(); n != 4 {
		t.Fatalf("%d requests for 4 refused calls: nothing may be cached", n)
	}
	if left := tempLeft(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// Exactly at the limit is fine.
	f, err := fetch.File(ctx, r, srv.URL+"/declared", fetch.MaxSize(int64(len(big))))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestStallingServerTimesOut(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/mid-body" {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, strings.Repeat("a", 100))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	defer srv.Close()
	r, dir := openRawfs(t)
	for _, path := range []string{"/before-header", "/mid-body"} {
		start := time.Now()
		_, err := fetch.File(ctx, r, srv.URL+path, fetch.ReadTimeout(200*time.Millisecond))
		if !errors.Is(err, fetch.ErrReadTimeout) {
			t.Fatalf("%s: %v, want ErrReadTimeout", path, err)
		}
		t.Logf("%s: failed after %v", path, time.Since(start))
	}
	if left := tempLeft(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestSlowSteadyDownloadIsNotCutOff(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		for range 8 {
			io.WriteString(w, "0123456789")
			w.(http.Flusher).Flush()
			time.Sleep(60 * time.Millisecond)
		}
	}))
	defer srv.Close()
	r, _ := openRawfs(t)
	var calls []int64
	f, err := fetch.File(context.Background(), r, srv.URL, fetch.ReadTimeout(200*time.Millisecond),
		fetch.Progress(func(done, total int64) {
			if total != -1 {
				t.Errorf("total %d for a body of undeclared length, want -1", total)
			}
			calls = append(calls, done)
		}))
	if err != nil {
		t.Fatalf("a download slower in total (480 ms) than ReadTimeout but steady failed: %v", err)
	}
	if got := readAll(t, f); got != strings.Repeat("0123456789", 8) {
		t.Fatalf("read %q", got)
	}
	if len(calls) < 2 || calls[len(calls)-1] != 80 {
		t.Fatalf("progress calls %v, want several ending at 80", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] {
			t.Fatalf("progress went backwards: %v", calls)
		}
	}
}

func TestProgressWithDeclaredLength(t *testing.T) {
	srv := newServer(t, strings.Repeat("p", 300<<10))
	r, _ := openRawfs(t)
	var last, total atomic.Int64
	f, err := fetch.File(context.Background(), r, srv.URL, fetch.Progress(func(d, t int64) { last.Store(d); total.Store(t) }))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if last.Load() != 300<<10 || total.Load() != 300<<10 {
		t.Fatalf("progress ended at %d of %d, want %d of %d", last.Load(), total.Load(), 300<<10, 300<<10)
	}
}

func TestCancelledMidDownload(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, strings.Repeat("a", 1000))
		w.(http.Flusher).Flush()
		close(started)
		<-req.Context().Done()
	}))
	defer srv.Close()
	r, dir := openRawfs(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := fetch.File(ctx, r, srv.URL)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled mid-body: %v", err)
	}
	if left := tempLeft(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if _, err := region.Get[fetch.Record](context.Background(), r, "fetch:"+srv.URL); !errors.Is(err, region.ErrNotFound) {
		t.Fatalf("a record was stored for a cancelled download: %v", err)
	}
}

func TestStatusErrorNotCached(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		requests.Add(1)
		http.NotFound(w, req)
	}))
	defer srv.Close()
	r, _ := openRawfs(t)
	for range 2 {
		if _, err := fetch.File(context.Background(), r, srv.URL); !errors.Is(err, fetch.ErrStatus) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("404: %v", err)
		}
	}
	if requests.Load() != 2 {
		t.Fatalf("%d requests for 2 calls: an error must not be cached", requests.Load())
	}
}

// A body removed from the cache behind the record's back is downloaded
// again, once; if the server's body changed meanwhile the new one is served,
// never the record's old checksum with new bytes.
func TestBodyGoneIsRefetched(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, "first")
	r, _ := openRawfs(t)
	key := "fetch:" + srv.URL
	f, err := fetch.File(ctx, r, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	rec, err := region.Get[fetch.Record](ctx, r, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("first"))
	if rec.SHA256 != hex.EncodeToString(sum[:]) || rec.Size != 5 || rec.ETag == "" || rec.URL != srv.URL {
		t.Fatalf("record %+v", rec)
	}
	r.Delete(ctx, key+"\x00body\x00"+rec.SHA256)
	f, err = fetch.File(ctx, r, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "first" || srv.requests.Load() != 2 {
		t.Fatalf("read %q after %d requests", got, srv.requests.Load())
	}
	srv.set("second")
	r.Delete(ctx, key+"\x00body\x00"+rec.SHA256)
	f, err = fetch.File(ctx, r, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "second" {
		t.Fatalf("read %q, want the server's new body", got)
	}
	if rec, _ := region.Get[fetch.Record](ctx, r, key); rec.Size != 6 {
		t.Fatalf("record not replaced: %+v", rec)
	}
}

func TestBadInput(t *testing.T) {
	r, _ := openRawfs(t)
	ctx := context.Background()
	for _, c := range []struct {
		url  string
		opts []fetch.Option
		want string
	}{
		{"file:///etc/passwd", nil, `scheme "file"`},
		{"ftp://example.com/x", nil, `scheme "ftp"`},
		{"/relative/path", nil, "want an http or https URL"},
		{"http://", nil, "no host"},
		{"http://%zz", nil, "url"},
		{"http://example.invalid/", []fetch.Option{fetch.MaxSize(0)}, "MaxSize"},
		{"http://example.invalid/", []fetch.Option{fetch.ReadTimeout(-1)}, "ReadTimeout"},
		{"http://example.invalid/", []fetch.Option{fetch.ConnectTimeout(0)}, "ConnectTimeout"},
		{"http://example.invalid/", []fetch.Option{fetch.Client(nil)}, "Client"},
	} {
		_, err := fetch.File(ctx, r, c.url, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("File(%q): %v, want an error containing %q", c.url, err, c.want)
		}
	}
	if _, err := fetch.File(ctx, nil, "http://example.invalid/"); err == nil {
		t.Error("nil region accepted")
	}
	m, err := region.Open("memory", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := newServer(t, "x")
	if _, err := fetch.File(ctx, m, srv.URL); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("fetch into a memory region: %v, want ErrUnsupported", err)
	}
}

// Close waits for a download in flight, which completes.
func TestCloseWhileDownloading(t *testing.T) {
	srv := newServer(t, "slow body")
	srv.setDelay(200 * time.Millisecond)
	dir := t.TempDir()
	r, err := region.Open("rawfs", backends.Args{"base_dir": dir})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := fetch.File(context.Background(), r, srv.URL)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, region.ErrClosed) {
		t.Fatalf("fetch during Close: %v", err)
	}
	if _, err := fetch.File(context.Background(), r, srv.URL); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("fetch after Close: %v, want ErrClosed", err)
	}
}

func TestKeyReusedForAnotherURL(t *testing.T) {
	ctx := context.Background()
	a := newServer(t, "from a")
	b := newServer(t, "from b")
	r, _ := openRawfs(t)
	for _, c := range []struct{ url, want string }{{a.URL, "from a"}, {b.URL, "from b"}, {b.URL, "from b"}} {
		f, err := fetch.File(ctx, r, c.url, fetch.Key("shared"))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f); got != c.want {
			t.Fatalf("%s under a shared key: read %q, want %q", c.url, got, c.want)
		}
	}
	if a.requests.Load() != 1 || b.requests.Load() != 1 {
		t.Fatalf("requests: a %d, b %d; want 1 each", a.requests.Load(), b.requests.Load())
	}
}

// With RegenerateInBackground a stale caller gets the stale body at once and
// the revalidation finishes in the background.
func TestRevalidateInBackground(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, "v1")
	r, _ := openRawfs(t)
	opts := fetch.WithCallOptions(region.ExpireAfter(50*time.Millisecond), region.RegenerateInBackground())
	f, err := fetch.File(ctx, r, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f)
	srv.set("v2")
	time.Sleep(80 * time.Millisecond)
	f, err = fetch.File(ctx, r, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); got != "v1" {
		t.Fatalf("stale caller read %q, want the stale v1", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err = fetch.File(ctx, r, srv.URL, fetch.WithCallOptions(region.ExpireAfter(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		if readAll(t, f) == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background revalidation never stored v2")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}
