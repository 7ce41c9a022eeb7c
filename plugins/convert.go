package plugins

import (
	"encoding"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

func metaOf(e *backends.Entry) *pb.Meta {
	m := &pb.Meta{Version: int64(e.Version)}
	if !e.Created.IsZero() {
		m.HasCreated = true
		m.CreatedSeconds = e.Created.Unix()
		m.CreatedNanos = int32(e.Created.Nanosecond())
	}
	if len(e.Tags) > 0 {
		m.Tags = make([][]byte, len(e.Tags))
		for i, t := range e.Tags {
			m.Tags[i] = []byte(t)
		}
	}
	return m
}

// entryOf returns the entry described by m, without payload. A nil m is an
// entry with zero metadata.
func entryOf(m *pb.Meta) backends.Entry {
	var e backends.Entry
	if m == nil {
		return e
	}
	if m.HasCreated {
		e.Created = time.Unix(m.CreatedSeconds, int64(m.CreatedNanos))
	}
	e.Version = int(m.Version)
	if len(m.Tags) > 0 {
		e.Tags = make([]string, len(m.Tags))
		for i, t := range m.Tags {
			e.Tags[i] = string(t)
		}
	}
	return e
}

// argsToStruct encodes backend arguments for Open. The mapping (documented
// in docs/plugins.md): strings and booleans as they are; integers and floats
// as numbers (float64 on arrival), except integers beyond ±2^53, which are
// sent as decimal strings so that they arrive exactly; time.Duration as a Go
// duration string ("1m30s"); other fmt.Stringer and encoding.TextMarshaler
// values as their text; []string, []any and map[string]any recursively.
// Anything else is an error wrapping backends.ErrBadArgument naming the
// argument.
func argsToStruct(args backends.Args) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(args))}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := argValue(k, args[k])
		if err != nil {
			return nil, err
		}
		s.Fields[k] = v
	}
	return s, nil
}

const maxExactFloat = 1 << 53

func intValue(n int64) *structpb.Value {
	if n > maxExactFloat || n < -maxExactFloat {
		return structpb.NewStringValue(strconv.FormatInt(n, 10))
	}
	return structpb.NewNumberValue(float64(n))
}

func argValue(name string, v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case string:
		return structpb.NewStringValue(x), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case time.Duration:
		return structpb.NewStringValue(x.String()), nil
	case int:
		return intValue(int64(x)), nil
	case int8:
		return intValue(int64(x)), nil
	case int16:
		return intValue(int64(x)), nil
	case int32:
		return intValue(int64(x)), nil
	case int64:
		return intValue(x), nil
	case uint:
		return argValue(name, uint64(x))
	case uint8:
		return intValue(int64(x)), nil
	case uint16:
		return intValue(int64(x)), nil
	case uint32:
		return intValue(int64(x)), nil
	case uint64:
		if x > maxExactFloat {
			return structpb.NewStringValue(strconv.FormatUint(x, 10)), nil
		}
		return structpb.NewNumberValue(float64(x)), nil
	case float32:
		return argValue(name, float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: %s: want a finite number, got %v", backends.ErrBadArgument, name, x)
		}
		return structpb.NewNumberValue(x), nil
	case []string:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, s := range x {
			l.Values[i] = structpb.NewStringValue(s)
		}
		return structpb.NewListValue(l), nil
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			ev, err := argValue(fmt.Sprintf("%s[%d]", name, i), e)
			if err != nil {
				return nil, err
			}
			l.Values[i] = ev
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		st, err := argsToStruct(backends.Args(x))
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(st), nil
	case backends.Args:
		return argValue(name, map[string]any(x))
	case fmt.Stringer:
		return structpb.NewStringValue(x.String()), nil
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", backends.ErrBadArgument, name, err)
		}
		return structpb.NewStringValue(string(t)), nil
	}
	return nil, fmt.Errorf("%w: %s: a value of type %T cannot be sent to a plugin (want a string, number, boolean, duration, list or map)",
		backends.ErrBadArgument, name, v)
}

// structToArgs decodes Open's arguments on the plugin side.
func structToArgs(s *structpb.Struct) backends.Args {
	if s == nil {
		return backends.Args{}
	}
	return backends.Args(s.AsMap())
}
