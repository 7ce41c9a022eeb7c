package backends_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regioncache/regioncache/backends"
)

func TestArgsAccessors(t *testing.T) {
	a := backends.Args{
		"dir": "/x", "on": "true", "n": 3.0, "sz": "1GiB", "sz2": 4096, "sz3": "1.5 KiB",
		"d1": "90s", "d2": 30, "d3": "2.5", "d4": time.Minute,
	}
	if s, _ := a.String("dir", ""); s != "/x" {
		t.Fatal(s)
	}
	if b, _ := a.Bool("on", false); !b {
		t.Fatal("bool")
	}
	if n, _ := a.Int("n", 0); n != 3 {
		t.Fatal(n)
	}
	for k, want := range map[string]int64{"sz": 1 << 30, "sz2": 4096, "sz3": 1536} {
		if n, err := a.Size(k, 0); err != nil || n != want {
			t.Fatalf("%s: %d %v", k, n, err)
		}
	}
	for k, want := range map[string]time.Duration{"d1": 90 * time.Second, "d2": 30 * time.Second, "d3": 2500 * time.Millisecond, "d4": time.Minute} {
		if d, err := a.Duration(k, 0); err != nil || d != want {
			t.Fatalf("%s: %v %v", k, d, err)
		}
	}
	if d, _ := a.Duration("absent", 7); d != 7 {
		t.Fatal("default")
	}
	var nilArgs backends.Args
	if s, err := nilArgs.String("x", "def"); s != "def" || err != nil {
		t.Fatal("nil Args")
	}
}

func TestArgsErrorsNameTheArgument(t *testing.T) {
	a := backends.Args{"cache_size": "huge", "sync": "maybe", "expiration_time": "-5s", "n": 1.5}
	cases := []struct {
		err  error
		want string
	}{
		{func() error { _, err := a.Size("cache_size", 0); return err }(), `cache_size: want bytes or a size like "1GiB", got "huge"`},
		{func() error { _, err := a.Bool("sync", false); return err }(), "sync: want true or false"},
		{func() error { _, err := a.Duration("expiration_time", 0); return err }(), "expiration_time: want a duration that is not negative"},
		{func() error { _, err := a.Int("n", 0); return err }(), "n: want an integer, got 1.5"},
		{a.Only("cache_size", "sync"), "unknown argument(s) expiration_time, n; known arguments are cache_size, sync"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, backends.ErrBadArgument) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", c.err, c.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	backends.Register("registry-test", func(backends.Args) (backends.Backend, error) { return nil, errors.New("nope") })
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate Register did not panic")
		}
	}()
	found := false
	for _, n := range backends.Names() {
		found = found || n == "registry-test"
	}
	if !found {
		t.Fatal("Names misses a registered backend")
	}
	if _, err := backends.Open("no-such", nil); !errors.Is(err, backends.ErrUnknownBackend) || !strings.Contains(err.Error(), "registry-test") {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := backends.Open("registry-test", nil); err == nil || !strings.Contains(err.Error(), `"registry-test"`) {
		t.Fatalf("factory error not wrapped with the name: %v", err)
	}
	backends.Register("registry-test", func(backends.Args) (backends.Backend, error) { return nil, nil })
}

type finder struct{}

func (finder) Find(name string) (backends.Factory, bool) {
	if name == "found-by-finder" {
		return func(backends.Args) (backends.Backend, error) { return nil, errors.New("finder factory") }, true
	}
	return nil, false
}
func (finder) Names() []string { return []string{"found-by-finder"} }

func TestFinder(t *testing.T) {
	backends.AddFinder(finder{})
	if _, err := backends.Open("found-by-finder", nil); err == nil || !strings.Contains(err.Error(), "finder factory") {
		t.Fatalf("finder not consulted: %v", err)
	}
}

func TestArgsFloat(t *testing.T) {
	a := backends.Args{"f": 1.5, "f32": float32(0.25), "i": 3, "u8": uint8(7), "s": " 2.5e1 ", "n": nil,
		"bad": "x", "nan": "NaN", "inf": float64(1) / zero(), "b": true}
	for name, want := range map[string]float64{"f": 1.5, "f32": 0.25, "i": 3, "u8": 7, "s": 25, "n": 9, "absent": 9} {
		got, err := a.Float(name, 9)
		if err != nil || got != want {
			t.Errorf("Float(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"bad", "nan", "inf", "b"} {
		_, err := a.Float(name, 0)
		if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "finite number") {
			t.Errorf("Float(%q): %v; want ErrBadArgument naming the argument", name, err)
		}
	}
}

func zero() float64 { return 0 }

func TestHostPorts(t *testing.T) {
	for _, c := range []struct {
		v    any
		want []string
		bad  string // what the error must say; "" for none
	}{
		{v: nil},
		{v: "a:1, b:2,,", want: []string{"a:1", "b:2"}},
		{v: []string{"a:1", "[::1]:2"}, want: []string{"a:1", "[::1]:2"}},
		{v: []any{"a:1"}, want: []string{"a:1"}},
		{v: []any{"a:1", 2}, bad: "got element 2"},
		{v: "a", bad: `want "host:port", got "a"`},
		{v: 7, bad: `"host:port", a list of them or a comma-separated string`},
	} {
		got, err := backends.Args{"addrs": c.v}.HostPorts("addrs")
		if c.bad != "" {
			if !errors.Is(err, backends.ErrBadArgument) || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "addrs") {
				t.Errorf("%#v: error %v, want ErrBadArgument naming addrs and saying %q", c.v, err, c.bad)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%#v: %q, %v; want %q", c.v, got, err, c.want)
		}
	}
}
