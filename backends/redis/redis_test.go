package redis_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
	rcredis "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/internal/redistest"
)

// prefixFor maps a conformance directory to a unique, stable key prefix.
func prefixFor(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "rct-" + hex.EncodeToString(sum[:8])
}

func harness(srv *redistest.Server, extra backends.Args) conformance.Harness {
	open := func(dir string, ttl time.Duration) (backends.Backend, error) {
		// A 64 MiB value takes seconds to move under -race on a loaded
		// machine: more than go-redis's default 3s read timeout.
		args := backends.Args{"url": srv.URL(0), "prefix": prefixFor(dir), "lock_timeout": "5s", "socket_timeout": "30s"}
		for k, v := range extra {
			args[k] = v
		}
		if ttl > 0 {
			args["redis_expiration_time"] = ttl
		}
		return backends.Open("redis", args)
	}
	return conformance.Harness{
		Name: "redis",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) { return open(dir, 0) },
		OpenWithTTL: func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return open(dir, ttl)
		},
	}
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	conformance.Run(t, harness(srv, nil))
}

func TestConformanceNoLock(t *testing.T) {
	srv := redistest.Start(t)
	conformance.Run(t, harness(srv, backends.Args{"distributed_lock": false}), conformance.LargeValueSize(1<<20))
}

func open(t *testing.T, srv *redistest.Server, args backends.Args) *rcredis.Backend {
	t.Helper()
	a := backends.Args{"url": srv.URL(0), "prefix": t.Name()}
	for k, v := range args {
		a[k] = v
	}
	b, err := rcredis.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestArgs(t *testing.T) {
	bad := []backends.Args{
		{"bogus": 1},
		{"url": "http://x"},
		{"url": "redis://127.0.0.1:1/0", "host": "h"},
		{"port": 70000},
		{"port": "x"},
		{"db": -1},
		{"addrs": []any{"a:1", 2}},
		{"addrs": "nocolon"},
		{"addrs": "a:1,b:2", "db": 3},
		{"addrs": "a:1", "master_name": "m", "cluster": true},
		{"host": "h", "addrs": "a:1"},
		{"prefix": "a{b"},
		{"prefix": ""},
		{"redis_expiration_time": "soon"},
		{"lock_timeout": 0},
		{"distributed_lock": "maybe"},
		{"tls": "yes please"},
	}
	for _, a := range bad {
		b, err := rcredis.Open(a)
		if err == nil {
			_ = b.Close()
			t.Errorf("Open(%v) accepted", a)
			continue
		}
		if !errors.Is(err, backends.ErrBadArgument) {
			t.Errorf("Open(%v) = %v, want ErrBadArgument", a, err)
		}
	}
	good := []backends.Args{
		nil,
		{"host": "localhost", "port": "6380", "db": 2, "password": "p", "username": "u", "tls": true},
		{"addrs": []string{"a:1", "b:2"}},
		{"addrs": "a:1,b:2", "master_name": "mymaster", "db": 1},
		{"url": "rediss://u:p@h:1/3", "prefix": "p", "redis_expiration_time": 90, "distributed_lock": "false", "lock_timeout": "10s", "socket_timeout": 1.5},
	}
	for _, a := range good {
		b, err := rcredis.Open(a)
		if err != nil {
			t.Errorf("Open(%v) = %v", a, err)
			continue
		}
		_ = b.Close()
	}
}

func TestCapabilities(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, nil)
	if !backends.IsShared(b) || backends.LockerOf(b) == nil || backends.StorageTTL(b) != 0 {
		t.Fatalf("redis backend: shared %v, locker %v, TTL %v; want shared, a locker, no TTL",
			backends.IsShared(b), backends.LockerOf(b), backends.StorageTTL(b))
	}
	var _ interface {
		backends.MultiGetter
		backends.MultiSetter
		backends.MultiDeleter
		backends.TagEvicter
		backends.Lister
		backends.StatReporter
	} = b
	b2 := open(t, srv, backends.Args{"distributed_lock": false, "redis_expiration_time": "1m"})
	if backends.LockerOf(b2) != nil || backends.StorageTTL(b2) != time.Minute {
		t.Fatal("no-lock backend has a locker or wrong TTL")
	}
}

// TestKeyLayout pins the documented key layout: every key carries the
// {prefix} hash tag, entries under "e:", tag sets under "t:".
func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, backends.Args{"prefix": "app", "redis_expiration_time": "1h"})
	ctx := context.Background()
	if err := b.Set(ctx, "k", backends.Entry{Payload: []byte("v"), Tags: []string{"red"}}); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	keys, err := c.Keys(ctx, "*").Result() // fine on a private test server
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, []string{"{app}e:k", "{app}t:red"}) {
		t.Fatalf("keys %q", keys)
	}
	for _, k := range keys {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s has PTTL %v, want (0, 1h]", k, ttl)
		}
	}
}

func TestCorruptIsMiss(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, backends.Args{"prefix": "cx"})
	ctx := context.Background()
	c := srv.Client()
	good := backends.Entry{Payload: []byte("payload"), Created: time.Unix(100, 5), Version: -3, Tags: []string{"a", "bb", ""}}
	if err := b.Set(ctx, "good", good); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Get(ctx, "{cx}e:good").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "good")
	if err != nil || string(got.Payload) != "payload" || !got.Created.Equal(good.Created) || got.Version != -3 || !slices.Equal(got.Tags, good.Tags) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Every truncation, plus some garbage, is a miss (never a panic or a
	// different value) - except truncations inside the payload, which the
	// format cannot tell from a shorter payload.
	hdr := len(raw) - len("payload")
	cases := map[string]string{"garbage": "not an entry", "empty": "", "magic only": "rc\x01"}
	for i := 0; i < hdr; i++ {
		cases[fmt.Sprintf("cut at %d", i)] = string(raw[:i])
	}
	bad := slices.Clone(raw)
	bad[2] = 9 // unknown format
	cases["format 9"] = string(bad)
	huge := slices.Clone(raw[:11])
	huge = append(huge, 0, 0xff, 0xff, 0xff, 0xff, 0x0f) // version 0, 2^32-1 tags
	cases["huge tag count"] = string(huge)
	for name, v := range cases {
		if err := c.Set(ctx, "{cx}e:bad", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if e, err := b.Get(ctx, "bad"); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s: Get = %+v, %v; want ErrNotFound", name, e, err)
		}
		es, err := b.GetMulti(ctx, []string{"bad", "good"})
		if err != nil || es[0] != nil || es[1] == nil {
			t.Errorf("%s: GetMulti = %v, %v", name, es, err)
		}
	}
}

func TestEvictTag(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, backends.Args{"prefix": "ev"})
	ctx := context.Background()
	put := func(k string, tags ...string) {
		t.Helper()
		if err := b.Set(ctx, k, backends.Entry{Payload: []byte(k), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 600; i++ { // more than one SSCAN batch
		put(fmt.Sprintf("red%d", i), "red", "all")
	}
	put("blue", "blue", "all")
	put("retagged", "red")
	put("retagged", "blue") // overwritten without the tag: must survive
	put("gone", "red")
	if err := b.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}
	n, err := b.EvictTag(ctx, "red")
	if err != nil || n != 600 {
		t.Fatalf("EvictTag(red) = %d, %v; want 600", n, err)
	}
	st, _ := srv.CommandStats()
	if st["keys"] != 0 || st["scan"] != 0 {
		t.Fatalf("EvictTag scanned the keyspace: %v", st)
	}
	for _, k := range []string{"blue", "retagged"} {
		if _, err := b.Get(ctx, k); err != nil {
			t.Errorf("%s after EvictTag(red): %v", k, err)
		}
	}
	if _, err := b.Get(ctx, "red7"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("red7 after EvictTag(red): %v", err)
	}
	// The tag set is gone (every member settled).
	if n := srv.Client().Exists(ctx, "{ev}t:red").Val(); n != 0 {
		t.Errorf("tag set still exists")
	}
	if n, err := b.EvictTag(ctx, "all"); err != nil || n != 1 {
		t.Fatalf("EvictTag(all) = %d, %v; want 1 (blue)", n, err)
	}
}

func TestListAndStats(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, backends.Args{"prefix": "l*[s]?"}) // glob characters in the prefix
	other := open(t, srv, backends.Args{"prefix": "lxsx"})
	ctx := context.Background()
	want := map[string]int{}
	for i := 0; i < 1200; i++ {
		k := fmt.Sprintf("k%d\x00/..", i)
		want[k] = i % 7
		if err := b.Set(ctx, k, backends.Entry{Payload: make([]byte, i%7), Version: i, Tags: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Set(ctx, "foreign", backends.Entry{Payload: []byte("zz")}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err := b.List(ctx, func(e backends.EntryInfo) error {
		sz, ok := want[e.Key]
		if !ok {
			return fmt.Errorf("listed unknown key %q", e.Key)
		}
		if int(e.Size) != sz || !slices.Equal(e.Tags, []string{"x"}) {
			return fmt.Errorf("%q: %+v", e.Key, e)
		}
		seen[e.Key] = true
		return nil
	})
	if err != nil || len(seen) != len(want) {
		t.Fatalf("List: %v, saw %d of %d", err, len(seen), len(want))
	}
	st, err := b.StorageStats(ctx)
	var bytes int64
	for _, s := range want {
		bytes += int64(s)
	}
	if err != nil || st.Entries != int64(len(want)) || st.Bytes != bytes {
		t.Fatalf("StorageStats = %+v, %v; want %d entries, %d bytes", st, err, len(want), bytes)
	}
	stop := errors.New("stop")
	if err := b.List(ctx, func(backends.EntryInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List did not return fn's error: %v", err)
	}
}

func TestMultiRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, nil)
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d"}
	es := make([]backends.Entry, len(keys))
	for i := range es {
		es[i] = backends.Entry{Payload: []byte(keys[i]), Tags: []string{"t"}}
	}
	if err := srv.ResetStats(); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMulti(ctx, keys, es); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetMulti(ctx, append(keys, "missing"))
	if err != nil || got[4] != nil || string(got[2].Payload) != "c" {
		t.Fatalf("GetMulti = %v, %v", got, err)
	}
	if err := b.DeleteMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	st, _ := srv.CommandStats()
	if st["mget"] != 1 || st["get"] != 0 || st["exec"] != 1 || st["del"] != 1 {
		t.Fatalf("multi ops did not use MGET / one MULTI / one DEL: %v", st)
	}
}

func TestClosed(t *testing.T) {
	srv := redistest.Start(t)
	b := open(t, srv, nil)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := b.EvictTag(ctx, "k"); !errors.Is(err, backends.ErrClosed) {
		t.Fatal(err)
	}
	if err := b.List(ctx, func(backends.EntryInfo) error { return nil }); !errors.Is(err, backends.ErrClosed) {
		t.Fatal(err)
	}
}
