package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register("inspect", newInspect) }

// inspectReport is inspect's -json output.
type inspectReport struct {
	Cache   string   `json:"cache"`
	Entries []shown  `json:"entries"`
	More    int      `json:"more,omitempty"` // entries past --limit
	Total   sizeInfo `json:"total"`
}

// shown is a listed entry with its key as the caller wrote it.
type shown struct {
	entry
	UserKey string `json:"user_key"`
}

func newInspect(e *env) *cobra.Command {
	var (
		sortBy   string
		limit    int
		tree     bool
		force    bool
		reserved bool
		tf       *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect [DIR] [--backend NAME --arg k=v ... | --config FILE --prefix P]",
		Short: "list a cache's entries: keys, sizes (logical and on disk), ages, tags",
		Long: `inspect lists the entries of a cache directory or of any backend that can
list its entries (backends.Lister), with their keys as the caller wrote them,
logical and on-disk sizes, ages, versions and tags, and, for directories, a
per-directory tree with totals. The region's own records (invalidation marks)
are hidden unless --reserved is given.`,
		Example: `  regioncache inspect /var/cache/app
  regioncache inspect --backend redis --arg url=redis://localhost:6379/0 -json
  regioncache inspect --config cache.yaml --prefix cache.users. -sort size -limit 20`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch sortBy {
			case "age", "size", "key", "accessed":
			default:
				return usagef("--sort: want age, size, key or accessed, got %q", sortBy)
			}
			if limit < 0 {
				return usagef("--limit: want 0 or more, got %d", limit)
			}
			return runInspect(cmd.Context(), e, cmd, tf, args, sortBy, limit, tree, force, reserved)
		},
	}
	tf = addTargetFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&sortBy, "sort", "age", "order entries by age (newest first), size (largest first), key, or accessed (most recent first)")
	f.IntVar(&limit, "limit", 0, "show at most N entries (0: all)")
	f.BoolVar(&tree, "tree", true, "print the per-directory tree with totals (directories only)")
	f.BoolVar(&force, "progress", false, "show progress even when stderr is not a terminal")
	f.BoolVar(&reserved, "reserved", false, "also list the region's own records (invalidation marks), marked (reserved)")
	return cmd
}

func runInspect(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, sortBy string, limit int, tree, force, withReserved bool) error {
	t, rest, err := tf.open(ctx, args)
	if err != nil {
		return err
	}
	defer t.close()
	if len(rest) > 0 {
		return usagef("unexpected arguments %q", rest)
	}
	var ents []shown
	var total sizeInfo
	p := newProgress(e, "scanning", force)
	err = t.list(ctx, func(x entry) error {
		uk, res := userKey(x.Key)
		if res && !withReserved {
			return nil
		}
		x.Reserved = res
		ents = append(ents, shown{entry: x, UserKey: uk})
		total.Entries++
		total.Bytes += x.Size
		total.Disk += x.Disk
		return nil
	}, p)
	p.done()
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b shown) int {
		switch sortBy {
		case "size":
			if c := cmpInt(max(b.Disk, b.Size), max(a.Disk, a.Size)); c != 0 {
				return c
			}
		case "key":
			return strings.Compare(a.UserKey, b.UserKey)
		case "accessed":
			if c := b.Accessed.Compare(a.Accessed); c != 0 {
				return c
			}
		}
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.UserKey, b.UserKey)
	})
	list := ents
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	if jsonOut(cmd) {
		if list == nil {
			list = []shown{}
		}
		return writeJSON(e.stdout, inspectReport{Cache: t.describe(), Entries: list, More: len(ents) - len(list), Total: total})
	}
	now := time.Now()
	_, isDir := t.(*dirTarget)
	fmt.Fprintf(e.stdout, "%s\n\n", t.describe())
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if isDir {
		fmt.Fprintln(tw, "KEY\tSIZE\tON DISK\tAGE\tACCESSED\tVERSION\tTAGS")
	} else {
		fmt.Fprintln(tw, "KEY\tSIZE\tAGE\tVERSION\tTAGS")
	}
	for _, x := range list {
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
		key := printableKey(x.UserKey)
		if x.Reserved {
			key += " (reserved)"
		}
		if isDir {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%d\t%s\n", key, humanBytes(x.Size), humanBytes(x.Disk), age, humanAge(now.Sub(x.Accessed)), x.Version, tags)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", key, humanBytes(x.Size), age, x.Version, tags)
		}
	}
	tw.Flush()
	if len(list) < len(ents) {
		fmt.Fprintf(e.stdout, "... and %d more\n", len(ents)-len(list))
	}
	if isDir && tree {
		type dirTotal struct {
			n     int
			bytes int64
		}
		perDir := map[string]*dirTotal{}
		for _, x := range ents {
			d := filepath.Base(filepath.Dir(x.Path))
			if perDir[d] == nil {
				perDir[d] = &dirTotal{}
			}
			perDir[d].n++
			perDir[d].bytes += x.Disk
		}
		fmt.Fprintf(e.stdout, "\n%s/\n", t.(*dirTarget).s.Dir())
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
			fmt.Fprintf(e.stdout, "%s %s/  %s, %s on disk\n", branch, d, entries(perDir[d].n), humanBytes(perDir[d].bytes))
		}
	}
	fmt.Fprintf(e.stdout, "\ntotal: %s\n", sizeLine(total, isDir))
	return nil
}

// sizeLine formats a size: "4 entries, 3.0 MiB (3.1 MiB on disk)".
func sizeLine(s sizeInfo, disk bool) string {
	line := fmt.Sprintf("%s, %s", entries(int(s.Entries)), humanBytes(s.Bytes))
	if disk {
		line += fmt.Sprintf(" (%s on disk)", humanBytes(s.Disk))
	}
	return line
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
