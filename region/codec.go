package region

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Codec encodes values for backends that store bytes. Values of type []byte
// and string never go through a codec. A Codec must be safe for concurrent
// use. Unmarshal failing makes the entry a miss, so a value whose type has
// changed shape is regenerated rather than reported as an error.
type Codec interface {
	// Name identifies the codec ("gob", "json", "msgpack"), for
	// configuration files (see RegisterCodec).
	Name() string
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// The built-in codecs. MessagePack is in package region/msgpack, so that
// programs that do not use it do not link it.
var (
	// Gob encodes with encoding/gob, the default. Each value is encoded on
	// its own, with its type description.
	Gob Codec = gobCodec{}
	// JSON encodes with encoding/json.
	JSON Codec = jsonCodec{}
)

var (
	codecsMu sync.RWMutex
	codecs   = map[string]Codec{"gob": Gob, "json": JSON}
)

// RegisterCodec makes c available to CodecByName and configuration files
// under c.Name(). It is meant to be called from the init function of the
// codec's package: importing github.com/regioncache/regioncache/region/msgpack
// (even as _) registers "msgpack". RegisterCodec panics if c is nil, its
// name is empty, or the name is already registered.
func RegisterCodec(c Codec) {
	if c == nil {
		panic("region: RegisterCodec with a nil codec")
	}
	name := c.Name()
	if name == "" {
		panic("region: RegisterCodec with an empty name")
	}
	codecsMu.Lock()
	defer codecsMu.Unlock()
	if _, dup := codecs[name]; dup {
		panic("region: RegisterCodec called twice for codec " + name)
	}
	codecs[name] = c
}

// CodecByName returns the codec registered as name: "gob" and "json" always,
// "msgpack" (or "messagepack") once package region/msgpack is imported.
func CodecByName(name string) (Codec, bool) {
	if name == "messagepack" {
		name = "msgpack"
	}
	codecsMu.RLock()
	defer codecsMu.RUnlock()
	c, ok := codecs[name]
	return c, ok
}

// CodecNames returns the sorted names of the registered codecs.
func CodecNames() []string {
	codecsMu.RLock()
	defer codecsMu.RUnlock()
	names := make([]string, 0, len(codecs))
	for n := range codecs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unknownCodec explains a codec name that CodecByName does not know, listing
// the known ones.
func unknownCodec(name string) error {
	hint := ""
	if name == "msgpack" || name == "messagepack" {
		hint = `; import _ "github.com/regioncache/regioncache/region/msgpack" to register it`
	}
	return fmt.Errorf("%w: unknown codec %q (known: %s)%s", ErrBadOption, name, strings.Join(CodecNames(), ", "), hint)
}

type gobCodec struct{}

func (gobCodec) Name() string { return "gob" }
func (gobCodec) Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
func (gobCodec) Unmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

type jsonCodec struct{}

func (jsonCodec) Name() string                       { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
