package backends

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Args are a backend's arguments, keyed by snake_case names as in dogpile.cache
// configuration ("base_dir", "cache_size", "expiration_time", ...). Values
// come from Go code, from flat configuration maps or from JSON/YAML files, so
// the accessors accept every reasonable spelling: numbers as any Go numeric
// type or as strings, booleans as bool or "true"/"false"/"1"/"0", durations as
// time.Duration, Go duration strings ("90s") or seconds (90, "90", 1.5).
//
// Every accessor returns the default when the argument is absent (or nil), and
// an error wrapping ErrBadArgument that names the argument and what was
// expected when it is present but unusable. A nil Args is valid and empty.
type Args map[string]any

func badArg(name, want string, got any) error {
	return fmt.Errorf("%w: %s: want %s, got %#v", ErrBadArgument, name, want, got)
}

// Has reports whether the argument is present with a non-nil value.
func (a Args) Has(name string) bool {
	v, ok := a[name]
	return ok && v != nil
}

// String returns a string argument. Numbers and booleans are formatted.
func (a Args) String(name, def string) (string, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case fmt.Stringer:
		return x.String(), nil
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x), nil
	}
	return "", badArg(name, "a string", v)
}

// HostPorts returns a list of "host:port" addresses, given as a
// comma-separated string, a []string or a []any of strings; nil when the
// argument is absent. Every element must split into a host and a port.
func (a Args) HostPorts(name string) ([]string, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return nil, nil
	}
	var out []string
	switch x := v.(type) {
	case string:
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case []string:
		out = append(out, x...)
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s: want a list of \"host:port\" strings, got element %#v", ErrBadArgument, name, e)
			}
			out = append(out, s)
		}
	default:
		return nil, badArg(name, `"host:port", a list of them or a comma-separated string`, v)
	}
	for _, hp := range out {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("%w: %s: want \"host:port\", got %q", ErrBadArgument, name, hp)
		}
	}
	return out, nil
}

// Bool returns a boolean argument.
func (a Args) Bool(name string, def bool) (bool, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, badArg(name, "true or false", v)
		}
		return b, nil
	case int:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case float64:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	}
	return false, badArg(name, "true or false", v)
}

// Int returns an integer argument.
func (a Args) Int(name string, def int) (int, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	n, ok := toInt64(v)
	if !ok || n > math.MaxInt || n < math.MinInt {
		return 0, badArg(name, "an integer", v)
	}
	return int(n), nil
}

// Float returns a floating-point argument: any Go numeric type or a numeric
// string ("0.5", "1e3"). NaN and infinities are rejected.
func (a Args) Float(name string, def float64) (float64, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := toFloat(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, badArg(name, "a finite number", v)
	}
	return f, nil
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), x <= math.MaxInt64
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float32:
		return int64(x), float32(int64(x)) == x
	case float64:
		return int64(x), float64(int64(x)) == x && math.Abs(x) < 1<<62
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	n, ok := toInt64(v)
	return float64(n), ok
}

// Duration returns a duration argument: a time.Duration, a Go duration string
// ("1h30m"), or a number of seconds (int, float or numeric string) as in
// dogpile's expiration_time. Negative durations are rejected.
func (a Args) Duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	const want = `a duration like "90s" or a number of seconds`
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		s := strings.TrimSpace(x)
		if pd, err := time.ParseDuration(s); err == nil {
			d = pd
		} else if f, ok := toFloat(s); ok {
			d = time.Duration(f * float64(time.Second))
		} else {
			return 0, badArg(name, want, v)
		}
	default:
		f, ok := toFloat(v)
		if !ok || f > float64(math.MaxInt64)/float64(time.Second) {
			return 0, badArg(name, want, v)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		return 0, badArg(name, "a duration that is not negative", v)
	}
	return d, nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1000 * 1000 * 1000 * 1000, "tib": 1 << 40,
}

// ParseSize parses a byte size: a plain number of bytes ("1048576") or a
// number with a unit ("512KiB", "1.5 GiB", "10MB"; k/m/g/t alone are
// 1024-based). It is exported for command-line flags.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("bad size %q", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*float64(mult) > math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// Size returns a byte-size argument: a number of bytes or a string such as
// "1GiB" (see ParseSize). Negative sizes are rejected.
func (a Args) Size(name string, def int64) (int64, error) {
	v, ok := a[name]
	if !ok || v == nil {
		return def, nil
	}
	const want = `bytes or a size like "1GiB"`
	if s, ok := v.(string); ok {
		n, err := ParseSize(s)
		if err != nil {
			return 0, badArg(name, want, v)
		}
		return n, nil
	}
	n, ok := toInt64(v)
	if !ok || n < 0 {
		return 0, badArg(name, want, v)
	}
	return n, nil
}

// Only returns an error wrapping ErrBadArgument if a holds any argument not
// among known, naming the unknown ones and listing the known ones. Backends
// call it first so that a misspelt argument is an error, not a silent default.
func (a Args) Only(known ...string) error {
	var unknown []string
	for k := range a {
		found := false
		for _, n := range known {
			if k == n {
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	ks := append([]string(nil), known...)
	sort.Strings(ks)
	return fmt.Errorf("%w: unknown argument(s) %s; known arguments are %s",
		ErrBadArgument, strings.Join(unknown, ", "), strings.Join(ks, ", "))
}

// Clone returns a shallow copy of a.
func (a Args) Clone() Args {
	c := make(Args, len(a))
	for k, v := range a {
		c[k] = v
	}
	return c
}
