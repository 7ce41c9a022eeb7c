package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func init() { register("prune", newPrune) }

// pruneReport is prune's -json output.
type pruneReport struct {
	Cache  string `json:"cache"`
	DryRun bool   `json:"dry_run"`
	pruneResult
	Removed []shown  `json:"removed"` // what was (or would be) removed
	Now     sizeInfo `json:"now"`     // after the prune (unchanged by a dry run)
}

func newPrune(e *env) *cobra.Command {
	var (
		expired, maxSize string
		dryRun, force    bool
		tf               *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "prune [DIR] [--backend NAME --arg k=v ...] [--expired AGE] [--max-size SIZE] [--dry-run]",
		Short: "remove expired entries, or shrink a cache to a size (least recently used first)",
		Long: `prune removes entries created longer ago than --expired, then, with
--max-size, the least recently used entries (the oldest, for backends that
keep no access time) until the cache holds at most that many bytes of entry
files (payload bytes for other backends); --max-size 0 empties the cache.
--dry-run removes nothing and lists what would go. The region's own records
(invalidation marks) are never removed. Works on directories and on any
backend that can list its entries.`,
		Example: `  regioncache prune /var/cache/app --expired 2d
  regioncache prune /var/cache/app --max-size 512MiB --dry-run
  regioncache prune --backend redis --arg url=redis://localhost/0 --expired 86400 -json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			before := time.Time{}
			if expired != "" {
				d, err := parseAge(expired)
				if err != nil {
					return usagef("--expired: %v", err)
				}
				before = time.Now().Add(-d)
			}
			limit := int64(-1)
			if cmd.Flags().Changed("max-size") {
				n, err := parseSize(maxSize)
				if err != nil {
					return usagef("--max-size: %v", err)
				}
				limit = n
			}
			if before.IsZero() && limit < 0 {
				return usagef("nothing to do: give --expired, --max-size or both")
			}
			return runPrune(cmd.Context(), e, cmd, tf, args, before, limit, dryRun, force)
		},
	}
	tf = addTargetFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&expired, "expired", "", `remove entries created longer ago than this: "48h", "2d" or seconds`)
	f.StringVar(&maxSize, "max-size", "", `then remove least recently used entries until the cache holds at most this: "512MiB", bytes, or 0 to empty it`)
	f.BoolVar(&dryRun, "dry-run", false, "remove nothing; report what would be removed")
	f.BoolVar(&force, "progress", false, "show progress even when stderr is not a terminal")
	return cmd
}

func runPrune(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, before time.Time, limit int64, dryRun, force bool) error {
	t, rest, err := tf.open(ctx, args)
	if err != nil {
		return err
	}
	defer t.close()
	if len(rest) > 0 {
		return usagef("unexpected arguments %q", rest)
	}
	var all []entry
	p := newProgress(e, "scanning", force)
	err = t.list(ctx, func(x entry) error { all = append(all, x); return nil }, p)
	p.done()
	if err != nil {
		return err
	}
	plan := planPrune(all, before, limit)
	rep := pruneReport{Cache: t.describe(), DryRun: dryRun, Removed: []shown{}}
	p = newProgress(e, "removing", force)
	for i, v := range plan {
		if !dryRun {
			if err := t.delete(ctx, v.Key); err != nil {
				p.done()
				return fmt.Errorf("after removing %d of %d entries: %w", i, len(plan), err)
			}
		}
		rep.add(v)
		uk, _ := userKey(v.Key)
		rep.Removed = append(rep.Removed, shown{entry: v.entry, UserKey: uk})
		p.step(i+1, len(plan))
	}
	p.done()
	rep.Now, err = t.stats(ctx, nil)
	if err != nil {
		return err
	}
	if jsonOut(cmd) {
		return writeJSON(e.stdout, rep)
	}
	_, isDir := t.(*dirTarget)
	verb := "removed"
	if dryRun {
		verb = "would remove"
		for _, x := range rep.Removed {
			why := "least recently used"
			if !before.IsZero() && x.Created.Before(before) {
				why = "expired"
			}
			fmt.Fprintf(e.stdout, "would remove %s (%s, %s)\n", printableKey(x.UserKey), humanBytes(x.size()), why)
		}
	}
	fmt.Fprintf(e.stdout, "%s %d expired and %d evicted entries, %s\n", verb, rep.Expired, rep.Evicted, humanBytes(rep.Freed))
	fmt.Fprintf(e.stdout, "now: %s\n", sizeLine(rep.Now, isDir))
	return nil
}
