package main

import (
	"context"
	"fmt"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
)

func init() {
	register(&command{
		name:  "prune",
		usage: "prune [-expired DURATION] [-max-size SIZE] [-progress] <dir>",
		short: "remove expired entries from a filesystem or rawfs cache directory, or shrink it to a size",
		run:   runPrune,
	})
}

func runPrune(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("prune", e)
	expired := fs.Duration("expired", 0, `remove entries created longer ago than this ("24h")`)
	maxSize := fs.String("max-size", "", `then evict least recently used entries until the directory holds at most this ("512MiB")`)
	force := fs.Bool("progress", false, "show progress even when stderr is not a terminal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one cache directory, got %d arguments", fs.NArg())
	}
	if *expired < 0 {
		return usagef("-expired: want a positive duration, got %v", *expired)
	}
	var limit int64
	if *maxSize != "" {
		n, err := backends.ParseSize(*maxSize)
		if err != nil || n <= 0 {
			return usagef(`-max-size: want a size like "512MiB" or a number of bytes, got %q`, *maxSize)
		}
		limit = n
	}
	if *expired == 0 && limit == 0 {
		return usagef("nothing to do: give -expired, -max-size or both")
	}
	return withStore(fs.Arg(0), func(s *fsstore.Store) error {
		var before time.Time
		if *expired > 0 {
			before = time.Now().Add(-*expired)
		}
		prog, done := progress(e.stderr, "pruning", *force)
		r, err := s.Prune(ctx, before, limit, prog)
		done()
		if err != nil {
			return err
		}
		st, _ := s.Stats(ctx)
		fmt.Fprintf(e.stdout, "removed %d expired and %d evicted entries, freed %s\n", r.Expired, r.Evicted, humanBytes(r.Freed))
		fmt.Fprintf(e.stdout, "now: %d entries, %s\n", st.Entries, humanBytes(st.Bytes))
		return nil
	})
}
