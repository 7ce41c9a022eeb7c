package main

import (
	"context"
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
)

// TestConformance runs the suite in-process, as the author of a backend
// does first; the plugins and CLI tests run it through the plugin protocol.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "bolt",
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return Open(backends.Args{"base_dir": dir, "inline_max": 4096})
		},
	})
}

func TestCorruptRecordIsMiss(t *testing.T) {
	for _, p := range [][]byte{nil, {0}, {magic}, {magic, 3, 0xff}, {magic, 2, 0, 0, 3, 'a', 'b', 'c', 0}} {
		if _, err := decode(p); err == nil {
			t.Errorf("decode(%x) accepted a corrupt record", p)
		}
	}
}
