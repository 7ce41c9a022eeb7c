// Package msgpack provides the MessagePack codec for regions, encoding with
// github.com/vmihailenco/msgpack/v5. It lives apart from package region so
// that programs that do not use MessagePack do not link it.
//
// Use it directly:
//
//	r, err := region.Open("memory", nil, region.WithCodec(msgpack.Codec))
//
// or blank-import the package to make the name "msgpack" (alias
// "messagepack") available to region.CodecByName and configuration files:
//
//	import _ "github.com/regioncache/regioncache/region/msgpack"
package msgpack

import (
	vmsgpack "github.com/vmihailenco/msgpack/v5"

	"github.com/regioncache/regioncache/region"
)

// Codec encodes with github.com/vmihailenco/msgpack/v5. Its name is
// "msgpack".
var Codec region.Codec = codec{}

func init() { region.RegisterCodec(Codec) }

type codec struct{}

func (codec) Name() string                       { return "msgpack" }
func (codec) Marshal(v any) ([]byte, error)      { return vmsgpack.Marshal(v) }
func (codec) Unmarshal(data []byte, v any) error { return vmsgpack.Unmarshal(data, v) }
