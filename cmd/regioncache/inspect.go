package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regioncache/regioncache/internal/fsstore"
)

func init() {
	register(&command{
		name:  "inspect",
		usage: "inspect [-sort age|size|key|accessed] [-limit N] [-tree] [-progress] <dir>",
		short: "list the entries of a filesystem or rawfs cache directory: keys, sizes, ages, tags, a tree",
		run:   runInspect,
	})
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("inspect", e)
	sortBy := fs.String("sort", "age", "order entries by age (newest first), size (largest first), key, or accessed (most recent first)")
	limit := fs.Int("limit", 0, "show at most N entries (0: all)")
	tree := fs.Bool("tree", true, "print the per-directory tree with totals")
	force := fs.Bool("progress", false, "show progress even when stderr is not a terminal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one cache directory, got %d arguments", fs.NArg())
	}
	switch *sortBy {
	case "age", "size", "key", "accessed":
	default:
		return usagef("-sort: want age, size, key or accessed, got %q", *sortBy)
	}
	if *limit < 0 {
		return usagef("-limit: want 0 or more, got %d", *limit)
	}
	dir := fs.Arg(0)
	return withStore(dir, func(s *fsstore.Store) error {
		var ents []fsstore.EntryInfo
		prog, done := progress(e.stderr, "scanning", *force)
		err := s.Walk(ctx, func(x fsstore.EntryInfo) error { ents = append(ents, x); return nil }, prog)
		done()
		if err != nil {
			return err
		}
		slices.SortFunc(ents, func(a, b fsstore.EntryInfo) int {
			switch *sortBy {
			case "size":
				return cmpInt(b.Disk, a.Disk)
			case "key":
				return strings.Compare(a.Key, b.Key)
			case "accessed":
				return b.Accessed.Compare(a.Accessed)
			}
			return b.Created.Compare(a.Created)
		})
		now := time.Now()
		fmt.Fprintf(e.stdout, "%s cache %s\n\n", kindName(s.Options().Kind), s.Dir())
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSIZE\tAGE\tACCESSED\tVERSION\tTAGS")
		shown := ents
		if *limit > 0 && len(shown) > *limit {
			shown = shown[:*limit]
		}
		for _, x := range shown {
			age := "-"
			if !x.Created.IsZero() {
				age = humanAge(now.Sub(x.Created))
			}
			tags := "-"
			if len(x.Tags) > 0 {
				q := make([]string, len(x.Tags))
				for i, t := range x.Tags {
					q[i] = printableKey(t)
				}
				tags = strings.Join(q, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%d\t%s\n", printableKey(x.Key), humanBytes(x.Size), age, humanAge(now.Sub(x.Accessed)), x.Version, tags)
		}
		tw.Flush()
		if len(shown) < len(ents) {
			fmt.Fprintf(e.stdout, "... and %d more\n", len(ents)-len(shown))
		}
		var total int64
		type dirTotal struct {
			n     int
			bytes int64
		}
		perDir := map[string]*dirTotal{}
		for _, x := range ents {
			total += x.Disk
			d := filepath.Base(filepath.Dir(x.Path))
			if perDir[d] == nil {
				perDir[d] = &dirTotal{}
			}
			perDir[d].n++
			perDir[d].bytes += x.Disk
		}
		if *tree {
			fmt.Fprintf(e.stdout, "\n%s/\n", s.Dir())
			names := make([]string, 0, len(perDir))
			for d := range perDir {
				names = append(names, d)
			}
			slices.Sort(names)
			for i, d := range names {
				branch := "├──"
				if i == len(names)-1 {
					branch = "└──"
				}
				fmt.Fprintf(e.stdout, "%s %s/  %s, %s\n", branch, d, entries(perDir[d].n), humanBytes(perDir[d].bytes))
			}
		}
		fmt.Fprintf(e.stdout, "\ntotal: %s, %s on disk\n", entries(len(ents)), humanBytes(total))
		return nil
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
