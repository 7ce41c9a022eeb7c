package region_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/region"
)

func TestCodecByName(t *testing.T) {
	for name, want := range map[string]region.Codec{"gob": region.Gob, "json": region.JSON} {
		if c, ok := region.CodecByName(name); !ok || c != want {
			t.Errorf("CodecByName(%q) = %v, %v", name, c, ok)
		}
	}
	if c, ok := region.CodecByName("nope"); ok || c != nil {
		t.Errorf("CodecByName(unknown) = %v, %v", c, ok)
	}
	names := strings.Join(region.CodecNames(), ",")
	if !strings.Contains(names, "gob") || !strings.Contains(names, "json") {
		t.Errorf("CodecNames() = %v", names)
	}
}

type namedCodec struct{ name string }

func (c namedCodec) Name() string                     { return c.name }
func (namedCodec) Marshal(any) ([]byte, error)        { return nil, errors.New("unused") }
func (namedCodec) Unmarshal(data []byte, v any) error { return errors.New("unused") }

func TestRegisterCodec(t *testing.T) {
	c := namedCodec{"test-register-codec"}
	region.RegisterCodec(c)
	if got, ok := region.CodecByName(c.name); !ok || got != region.Codec(c) {
		t.Fatalf("registered codec not found: %v %v", got, ok)
	}
	for _, bad := range []region.Codec{nil, namedCodec{""}, namedCodec{"gob"}, c} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterCodec(%#v) did not panic", bad)
				}
			}()
			region.RegisterCodec(bad)
		}()
	}
}

func TestConfigureUnknownCodecListsKnown(t *testing.T) {
	err := region.New().ConfigureFromMap(map[string]any{"c.backend": "memory", "c.codec": "protobuf"}, "c.")
	if !errors.Is(err, region.ErrBadOption) {
		t.Fatalf("unknown codec: %v, want ErrBadOption", err)
	}
	for _, s := range []string{"c.codec", `"protobuf"`, "gob", "json"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}
