package msgpack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/region"
	"github.com/regioncache/regioncache/region/msgpack"
)

type point struct {
	X, Y int
	Name string
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, err := region.Open("memory", backends.Args{"copy_values": true}, region.WithCodec(msgpack.Codec))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := point{1, -2, "p"}
	if err := region.Set(ctx, r, "p", want); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Backend().Get(ctx, "p"); err != nil || len(e.Payload) == 0 || e.Payload[0]&0xf0 != 0x80 {
		t.Fatalf("payload %x, %v: want a MessagePack map", e.Payload, err)
	}
	got, err := region.Get[point](ctx, r, "p")
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"msgpack", "messagepack"} {
		if c, ok := region.CodecByName(name); !ok || c != msgpack.Codec {
			t.Errorf("CodecByName(%q) = %v, %v", name, c, ok)
		}
	}
	if !strings.Contains(strings.Join(region.CodecNames(), ","), "msgpack") {
		t.Errorf("CodecNames() = %v", region.CodecNames())
	}
	ctx := context.Background()
	r := region.New()
	if err := r.ConfigureFromMap(map[string]any{"c.backend": "memory", "c.codec": "msgpack", "c.arguments.copy_values": true}, "c."); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := region.Set(ctx, r, "p", point{X: 3}); err != nil {
		t.Fatal(err)
	}
	if got, err := region.Get[point](ctx, r, "p"); err != nil || got.X != 3 {
		t.Fatalf("got %+v, %v", got, err)
	}
}
