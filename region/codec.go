package region

import (
	"bytes"
	"encoding/gob"
	"encoding/json"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes values for backends that store bytes. Values of type []byte
// and string never go through a codec. A Codec must be safe for concurrent
// use. Unmarshal failing makes the entry a miss, so a value whose type has
// changed shape is regenerated rather than reported as an error.
type Codec interface {
	// Name identifies the codec ("gob", "json", "msgpack").
	Name() string
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// The built-in codecs.
var (
	// Gob encodes with encoding/gob, the default. Each value is encoded on
	// its own, with its type description.
	Gob Codec = gobCodec{}
	// JSON encodes with encoding/json.
	JSON Codec = jsonCodec{}
	// MessagePack encodes with github.com/vmihailenco/msgpack/v5.
	MessagePack Codec = msgpackCodec{}
)

// CodecByName returns the built-in codec called name, for configuration files.
func CodecByName(name string) (Codec, bool) {
	switch name {
	case "gob":
		return Gob, true
	case "json":
		return JSON, true
	case "msgpack", "messagepack":
		return MessagePack, true
	}
	return nil, false
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

type msgpackCodec struct{}

func (msgpackCodec) Name() string                       { return "msgpack" }
func (msgpackCodec) Marshal(v any) ([]byte, error)      { return msgpack.Marshal(v) }
func (msgpackCodec) Unmarshal(data []byte, v any) error { return msgpack.Unmarshal(data, v) }
