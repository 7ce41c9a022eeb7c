package main

import (
	"context"
	"fmt"

	"github.com/regioncache/regioncache/internal/fsstore"
)

func init() {
	register(&command{
		name:  "evict",
		usage: "evict -tag TAG <dir>",
		short: "remove every entry carrying a tag from a filesystem or rawfs cache directory",
		run:   runEvict,
	})
}

func runEvict(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("evict", e)
	tag := fs.String("tag", "", "the tag whose entries to remove (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one cache directory, got %d arguments", fs.NArg())
	}
	if *tag == "" {
		return usagef("-tag is required")
	}
	return withStore(fs.Arg(0), func(s *fsstore.Store) error {
		n, err := s.EvictTag(ctx, *tag)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %d entries tagged %s\n", n, printableKey(*tag))
		return nil
	})
}
