package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
)

func init() { register("evict", newEvict) }

// evictReport is evict's -json output.
type evictReport struct {
	Cache   string `json:"cache"`
	Tag     string `json:"tag"`
	DryRun  bool   `json:"dry_run"`
	Removed int    `json:"removed"`
	// Keys lists what a dry run would remove (a real run reports a count:
	// a backend's tag eviction need not list what it removed).
	Keys []string `json:"keys,omitempty"`
}

func newEvict(e *env) *cobra.Command {
	var (
		tag           string
		dryRun, force bool
		tf            *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "evict --tag TAG [DIR] [--backend NAME --arg k=v ...] [--dry-run]",
		Short: "remove every entry carrying a tag",
		Long: `evict removes every entry carrying a tag, from a cache directory or any
backend that can evict by tag (backends.TagEvicter). --dry-run lists the
entries that carry the tag (it needs a backend that can list its entries).`,
		Example: `  regioncache evict --tag users /var/cache/app
  regioncache evict --backend redis --arg url=redis://localhost/0 --tag users --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tag == "" {
				return usagef("--tag is required")
			}
			return runEvict(cmd.Context(), e, cmd, tf, args, tag, dryRun, force)
		},
	}
	tf = addTargetFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&tag, "tag", "", "the tag whose entries to remove (required)")
	f.BoolVar(&dryRun, "dry-run", false, "remove nothing; list the entries that would be removed")
	f.BoolVar(&force, "progress", false, "show progress even when stderr is not a terminal")
	return cmd
}

func runEvict(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, tag string, dryRun, force bool) error {
	t, rest, err := tf.open(ctx, args)
	if err != nil {
		return err
	}
	defer t.close()
	if len(rest) > 0 {
		return usagef("unexpected arguments %q", rest)
	}
	rep := evictReport{Cache: t.describe(), Tag: tag, DryRun: dryRun}
	p := newProgress(e, "evicting", force)
	if dryRun {
		err = t.list(ctx, func(x entry) error {
			if slices.Contains(x.Tags, tag) {
				uk, _ := userKey(x.Key)
				rep.Keys = append(rep.Keys, uk)
			}
			return nil
		}, p)
		rep.Removed = len(rep.Keys)
	} else {
		rep.Removed, err = t.evictTag(ctx, tag, p)
	}
	p.done()
	if err != nil {
		return err
	}
	if jsonOut(cmd) {
		return writeJSON(e.stdout, rep)
	}
	if dryRun {
		slices.Sort(rep.Keys)
		for _, k := range rep.Keys {
			fmt.Fprintf(e.stdout, "would remove %s\n", printableKey(k))
		}
		fmt.Fprintf(e.stdout, "would remove %s tagged %s\n", entries(rep.Removed), printableKey(tag))
		return nil
	}
	fmt.Fprintf(e.stdout, "removed %s tagged %s\n", entries(rep.Removed), printableKey(tag))
	return nil
}
