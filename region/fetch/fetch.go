// Package fetch caches the body of an http or https URL as a file value
// (epymorph's load_or_fetch_url), with the region's dogpile guarantee: one
// download however many goroutines, processes and machines ask at once.
//
// File streams the body to a temporary file in the cache (never into
// memory), within a connect timeout, a read timeout (the longest wait for
// the response header or for the next body bytes) and a maximum size,
// reporting progress through a callback, and hands back a read-only
// *os.File on the cached bytes. The server's ETag and Last-Modified are kept
// with the entry; once the entry is stale (see region.ExpireAfter and
// region.WithExpiration) one caller revalidates it with a conditional
// request, and a 304 Not Modified refreshes it without downloading the body
// again, while the other callers are served the stale file (or wait, with
// region.WaitForFresh), as for any region value.
//
// Only http and https URLs are fetched; a redirect to any other scheme
// (file:, ftp:, data:, ...) and a redirect from https to http are refused,
// whatever the client's transport would allow.
//
// # Storage
//
// A fetch is two entries in the region. The body is a file value stored
// under a key derived from the caller's key and the body's SHA-256
// (key + "\x00body\x00" + hex digest), never expiring; since the key names
// the content, a body entry is written once and never changes. The record —
// URL, ETag, Last-Modified, size, SHA-256, fetch time — is an ordinary
// region value under the caller's key, and carries the expiration. The body
// is stored before the record that names it, so a record never names a body
// that was not stored; a body that has since been removed (evicted,
// deleted, changed behind the cache's back) is downloaded again and kept
// only if its SHA-256 is the one the record names, and otherwise the record
// is dropped and the fetch starts over. Bodies of earlier versions of a URL
// are left to the backend's eviction (cache_size) or storage TTL
// (expiration_time).
//
// The region's backend must store files (rawfs, or a plugin that streams);
// on others File returns an error wrapping backends.ErrUnsupported.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/regioncache/regioncache/region"
)

// Record is what is kept with a fetched body, under the caller's key.
type Record struct {
	URL          string
	ETag         string    // the server's ETag, if it sent one
	LastModified string    // the server's Last-Modified, if it sent one
	Size         int64     // of the body
	SHA256       string    // of the body, lower-case hex
	Fetched      time.Time // when the body was downloaded or last revalidated
}

// Defaults.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultReadTimeout    = 60 * time.Second
	DefaultMaxSize        = 1 << 30
)

// Errors.
var (
	// ErrTooLarge: the body is over the maximum size (MaxSize).
	ErrTooLarge = errors.New("fetch: body over the maximum size")
	// ErrRefused: a URL or redirect of a scheme other than http and https,
	// or a redirect from https to http.
	ErrRefused = errors.New("fetch: URL refused")
	// ErrStatus: the server answered with a status other than 200 (or 304
	// to a conditional request).
	ErrStatus = errors.New("fetch: unexpected HTTP status")
	// ErrReadTimeout: the server sent nothing for longer than ReadTimeout.
	ErrReadTimeout = errors.New("fetch: read timeout")
)

// Option adjusts File.
type Option func(*options) error

type options struct {
	key            string
	client         *http.Client
	connectTimeout time.Duration
	readTimeout    time.Duration
	maxSize        int64
	progress       func(done, total int64)
	header         http.Header
	call           []region.CallOption
}

// Key sets the cache key of the fetch (default "fetch:" + the URL).
func Key(key string) Option {
	return func(o *options) error { o.key = key; return nil }
}

// Client sets the HTTP client (default: one with ConnectTimeout). Its
// redirect policy is kept, after File's own (http and https only, no https
// to http). ConnectTimeout does not apply to a client given here; its
// transport's own timeouts do.
func Client(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("fetch: Client: client is nil")
		}
		o.client = c
		return nil
	}
}

// ConnectTimeout bounds establishing a connection, TLS handshake included
// (default DefaultConnectTimeout).
func ConnectTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("fetch: ConnectTimeout: want a duration > 0, got %v", d)
		}
		o.connectTimeout = d
		return nil
	}
}

// ReadTimeout bounds the wait for the response header and then for each
// next piece of the body (default DefaultReadTimeout): a server that stalls
// longer fails the fetch with ErrReadTimeout. A slow but steady download
// is never cut off.
func ReadTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("fetch: ReadTimeout: want a duration > 0, got %v", d)
		}
		o.readTimeout = d
		return nil
	}
}

// MaxSize refuses bodies over n bytes (default DefaultMaxSize): a declared
// Content-Length over n before any of the body is read, an undeclared one
// as soon as byte n+1 arrives. Nothing is cached.
func MaxSize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("fetch: MaxSize: want a byte count > 0, got %d", n)
		}
		o.maxSize = n
		return nil
	}
}

// Progress reports a download's progress to fn: bytes received so far, and
// the total (-1 when the server did not declare it). fn is called on the
// downloading goroutine after each piece of the body and once at the end;
// only the caller that downloads sees progress (the others wait for it).
func Progress(fn func(done, total int64)) Option {
	return func(o *options) error { o.progress = fn; return nil }
}

// Header adds a request header (an Authorization, an Accept, ...).
func Header(key, value string) Option {
	return func(o *options) error {
		if o.header == nil {
			o.header = http.Header{}
		}
		o.header.Add(key, value)
		return nil
	}
}

// WithCallOptions passes region call options (ExpireAfter, WaitForFresh,
// RegenerateInBackground, WithTags, ...) to the region call on the record.
// The body entry gets the same options, but never expires.
func WithCallOptions(opts ...region.CallOption) Option {
	return func(o *options) error { o.call = append(o.call, opts...); return nil }
}

// maxAttempts bounds how often one call starts over after finding a record
// whose body is gone and has changed on the server.
const maxAttempts = 3

// errBodyChanged: a record's body was missing from the cache and the server
// now sends different bytes.
var errBodyChanged = errors.New("fetch: the cached body is gone and the server's has changed")

// File returns a read-only file holding the body of rawURL, from the cache
// or downloaded into it (see the package doc). The caller closes the file.
// rawURL must be an absolute http or https URL.
func File(ctx context.Context, r *region.Region, rawURL string, opts ...Option) (*os.File, error) {
	if r == nil {
		return nil, errors.New("fetch: File: region is nil")
	}
	u, err := checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	o := options{connectTimeout: DefaultConnectTimeout, readTimeout: DefaultReadTimeout, maxSize: DefaultMaxSize}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.key == "" {
		o.key = "fetch:" + u.String()
	}
	f := &fetcher{r: r, url: u.String(), o: &o}
	f.client = f.newClient()
	return f.file(ctx)
}

// checkURL parses rawURL and accepts it only if it is an absolute http or
// https URL with a host.
func checkURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fetch: url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: url %q: want an http or https URL, got scheme %q", ErrRefused, rawURL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("fetch: url %q: no host", rawURL)
	}
	return u, nil
}

type fetcher struct {
	r      *region.Region
	url    string
	o      *options
	client *http.Client

	mu      sync.Mutex // the record's creator may run in the background
	handoff *os.File   // a body downloaded but not stored, for this call
	handSum string
}

// handOff keeps a body that could not be stored for the call that
// downloaded it.
func (f *fetcher) handOff(sum string, file *os.File) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handoff != nil {
		f.handoff.Close()
	}
	f.handoff, f.handSum = file, sum
}

// takeHandOff returns the unstored body for sum, if there is one.
func (f *fetcher) takeHandOff(sum string) *os.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handoff == nil || f.handSum != sum {
		return nil
	}
	file := f.handoff
	f.handoff = nil
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		file.Close()
		return nil
	}
	return file
}

// dropHandOff closes a body nobody took.
func (f *fetcher) dropHandOff() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handoff != nil {
		f.handoff.Close()
		f.handoff = nil
	}
}

func (f *fetcher) newClient() *http.Client {
	var c http.Client
	if f.o.client != nil {
		c = *f.o.client
	} else {
		d := &net.Dialer{Timeout: f.o.connectTimeout, KeepAlive: 30 * time.Second}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = d.DialContext
		t.TLSHandshakeTimeout = f.o.connectTimeout
		c.Transport = t
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w: redirect to %q: only http and https URLs are fetched", ErrRefused, req.URL.Redacted())
		}
		if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme == "http" {
			return fmt.Errorf("%w: redirect from https to %q", ErrRefused, req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("fetch: stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

func (f *fetcher) bodyKey(sum string) string { return f.o.key + "\x00body\x00" + sum }

func (f *fetcher) bodyOpts() []region.CallOption {
	return append(slices.Clone(f.o.call), region.MoveFile(), region.ExpireAfter(-1))
}

func (f *fetcher) file(ctx context.Context) (*os.File, error) {
	defer f.dropHandOff()
	for attempt := 1; ; attempt++ {
		rec, err := region.GetOrCreate(ctx, f.r, f.o.key, f.revalidate, f.o.call...)
		if err != nil {
			return nil, err
		}
		if file := f.takeHandOff(rec.SHA256); file != nil {
			return file, nil
		}
		if rec.URL != f.url || rec.SHA256 == "" {
			// A record for another URL under this key (Key reused):
			// drop it and start over.
			if err := f.r.Delete(ctx, f.o.key); err != nil {
				return nil, fmt.Errorf("fetch %s: %w", f.url, err)
			}
			if attempt == maxAttempts {
				return nil, fmt.Errorf("fetch %s: key %q keeps holding a record of another URL (%s)", f.url, f.o.key, rec.URL)
			}
			continue
		}
		body, err := region.GetOrCreateFile(ctx, f.r, f.bodyKey(rec.SHA256), func(ctx context.Context) (*os.File, error) {
			// The record's body is gone: download it again, and keep it
			// only if it is the same body.
			tmp, got, err := f.download(ctx, nil)
			if err != nil {
				return nil, err
			}
			if got.SHA256 != rec.SHA256 {
				tmp.discard()
				return nil, errBodyChanged
			}
			return tmp.f, nil
		}, f.bodyOpts()...)
		if errors.Is(err, errBodyChanged) && attempt < maxAttempts {
			// Drop the record unless someone replaced it meanwhile.
			cur, gerr := region.Get[Record](ctx, f.r, f.o.key, region.IgnoreExpiration())
			if gerr == nil && cur.SHA256 == rec.SHA256 {
				if err := f.r.Delete(ctx, f.o.key); err != nil {
					return nil, fmt.Errorf("fetch %s: %w", f.url, err)
				}
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return body, nil
	}
}

// revalidate is the record's creator: it runs under the key's lock, one
// per key at a time across processes. With a previous record for the URL
// it makes a conditional request, and a 304 gives the same record with a
// new fetch time; otherwise it downloads the body, stores it and returns
// the new record.
func (f *fetcher) revalidate(ctx context.Context) (Record, error) {
	var prev *Record
	if p, err := region.Get[Record](ctx, f.r, f.o.key, region.IgnoreExpiration()); err == nil && p.URL == f.url && p.SHA256 != "" {
		prev = &p
	}
	tmp, rec, err := f.download(ctx, prev)
	if err != nil {
		return Record{}, err
	}
	if tmp == nil { // 304: the same body, revalidated
		rec.Fetched = time.Now()
		return rec, nil
	}
	stored, err := region.GetOrCreateFile(ctx, f.r, f.bodyKey(rec.SHA256), func(context.Context) (*os.File, error) {
		return tmp.f, nil
	}, f.bodyOpts()...)
	if err != nil {
		tmp.discard()
		return Record{}, fmt.Errorf("fetch %s: storing the body: %w", f.url, err)
	}
	if stored == tmp.f {
		// Not stored (a write error, CacheIf, a disabled region): the
		// region handed our file back. Hand it to this call's caller
		// rather than have it download the body a second time.
		tmp.unlink()
		f.handOff(rec.SHA256, stored)
		return rec, nil
	}
	// Stored (moved or copied), or the same body was cached already.
	tmp.discard()
	stored.Close()
	return rec, nil
}

// temp is a downloaded body in a temporary file, with the file's identity
// taken when it was made.
type temp struct {
	f  *os.File
	fi os.FileInfo
}

// unlink removes the temporary file's name, unless the name is no longer
// that file's (the region moved it into the cache). An open handle keeps
// the bytes.
func (t *temp) unlink() {
	if named, err := os.Lstat(t.f.Name()); err == nil && os.SameFile(t.fi, named) {
		os.Remove(t.f.Name())
	}
}

// discard unlinks and closes the temporary file (closing twice is
// harmless: the region closes files it stored).
func (t *temp) discard() {
	t.unlink()
	t.f.Close()
}

// download GETs the URL, conditionally on prev if not nil. It returns a nil
// file for a 304, and otherwise a temporary file in the cache holding the
// body (positioned anywhere) and the record describing it.
func (f *fetcher) download(ctx context.Context, prev *Record) (*temp, Record, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := f.o.readTimeout
	stall := time.AfterFunc(timeout, func() {
		cancel(fmt.Errorf("%w: no data from %s for %v", ErrReadTimeout, f.url, timeout))
	})
	defer stall.Stop()
	wrapErr := func(err error) error {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrReadTimeout) {
			return cause
		}
		return err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, Record{}, fmt.Errorf("fetch %s: %w", f.url, err)
	}
	for k, vs := range f.o.header {
		req.Header[k] = slices.Clone(vs)
	}
	if prev != nil {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
		if prev.ETag == "" && prev.LastModified == "" {
			prev = nil // nothing to revalidate with
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, Record{}, fmt.Errorf("fetch %s: %w", f.url, wrapErr(err))
	}
	defer resp.Body.Close()
	stall.Reset(timeout)
	if resp.StatusCode == http.StatusNotModified && prev != nil {
		rec := *prev
		// A 304 may carry updated validators (RFC 9110 15.4.5).
		if etag := resp.Header.Get("ETag"); etag != "" {
			rec.ETag = etag
		}
		if lm := resp.Header.Get("Last-Modified"); lm != "" {
			rec.LastModified = lm
		}
		return nil, rec, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, Record{}, fmt.Errorf("%w: %s: %s", ErrStatus, f.url, resp.Status)
	}
	total := resp.ContentLength
	if total > f.o.maxSize {
		return nil, Record{}, fmt.Errorf("%w: %s declares %d bytes, over the limit of %d (MaxSize)", ErrTooLarge, f.url, total, f.o.maxSize)
	}
	tf, err := f.r.CreateTemp("fetch-*")
	if err != nil {
		return nil, Record{}, fmt.Errorf("fetch %s: %w", f.url, err)
	}
	fi, err := tf.Stat()
	if err != nil {
		tf.Close()
		os.Remove(tf.Name())
		return nil, Record{}, fmt.Errorf("fetch %s: %w", f.url, err)
	}
	tmp := &temp{f: tf, fi: fi}
	h := sha256.New()
	var done int64
	buf := make([]byte, 64<<10)
	body := io.LimitReader(resp.Body, f.o.maxSize+1)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			stall.Reset(timeout)
			done += int64(n)
			if done > f.o.maxSize {
				tmp.discard()
				return nil, Record{}, fmt.Errorf("%w: %s sent more than %d bytes (MaxSize)", ErrTooLarge, f.url, f.o.maxSize)
			}
			h.Write(buf[:n])
			if _, err := tmp.f.Write(buf[:n]); err != nil {
				tmp.discard()
				return nil, Record{}, fmt.Errorf("fetch %s: writing the body: %w", f.url, err)
			}
			if f.o.progress != nil {
				f.o.progress(done, total)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			tmp.discard()
			return nil, Record{}, fmt.Errorf("fetch %s: reading the body after %d bytes: %w", f.url, done, wrapErr(rerr))
		}
	}
	if total >= 0 && done != total {
		tmp.discard()
		return nil, Record{}, fmt.Errorf("fetch %s: got %d bytes of the %d declared", f.url, done, total)
	}
	if f.o.progress != nil {
		f.o.progress(done, total)
	}
	rec := Record{URL: f.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		Size: done, SHA256: hex.EncodeToString(h.Sum(nil)), Fetched: time.Now()}
	return tmp, rec, nil
}
