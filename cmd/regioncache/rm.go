package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/backends"
)

func init() { register("rm", newRm) }

// rmReport is rm's -json output.
type rmReport struct {
	Cache   string   `json:"cache"`
	DryRun  bool     `json:"dry_run"`
	Removed []string `json:"removed"` // (in a dry run: would be removed)
	Kept    []string `json:"kept"`    // answered no
	Missing []string `json:"missing"` // no such entry
}

func newRm(e *env) *cobra.Command {
	var (
		yes, dryRun bool
		tf          *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "rm [DIR] KEY... [--backend NAME --arg k=v ...] [-y] [--dry-run]",
		Short: "remove entries by key (asks first, on a terminal)",
		Long: `rm removes entries by the keys the region's callers use. It asks before
each removal when stdin is a terminal; otherwise it refuses to run without -y
(a missing terminal never answers a prompt). --dry-run removes nothing. A key
that has no entry is reported and makes the exit status 1. Keys that start
with "-" go after "--".`,
		Example: `  regioncache rm /var/cache/app user:1 user:2
  regioncache rm --backend redis --arg url=redis://localhost/0 -y report/2024`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(cmd.Context(), e, cmd, tf, args, yes, dryRun)
		},
	}
	tf = addTargetFlags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "remove nothing; report what would be removed")
	return cmd
}

func runRm(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, yes, dryRun bool) error {
	if !tf.selected() && len(args) < 2 || tf.selected() && len(args) < 1 {
		return usagef("want a cache (a directory or --backend) and at least one key")
	}
	if !yes && !dryRun && !e.stdinTTY {
		return usagef("stdin is not a terminal, so no one can answer \"remove?\": pass -y to remove without asking, or --dry-run")
	}
	t, keys, err := tf.open(ctx, args)
	if err != nil {
		return err
	}
	defer t.close()
	rep := rmReport{Cache: t.describe(), DryRun: dryRun, Removed: []string{}, Kept: []string{}, Missing: []string{}}
	in := bufio.NewReader(e.stdin)
	for _, k := range keys {
		bk := backendKey(k)
		x, err := t.info(ctx, bk)
		if errors.Is(err, backends.ErrNotFound) {
			rep.Missing = append(rep.Missing, k)
			continue
		}
		if err != nil {
			return err
		}
		if !yes && !dryRun {
			age := "unknown age"
			if !x.Created.IsZero() {
				age = "created " + humanAge(time.Since(x.Created)) + " ago"
			}
			fmt.Fprintf(e.stderr, "remove %s (%s, %s)? [y/N] ", printableKey(k), humanBytes(x.Size), age)
			line, rerr := in.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				if rerr != nil {
					fmt.Fprintln(e.stderr)
				}
				rep.Kept = append(rep.Kept, k)
				if !jsonOut(cmd) {
					fmt.Fprintf(e.stdout, "kept %s\n", printableKey(k))
				}
				continue
			}
		}
		if !dryRun {
			if err := t.delete(ctx, bk); err != nil {
				return err
			}
		}
		rep.Removed = append(rep.Removed, k)
		if !jsonOut(cmd) {
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(e.stdout, "%s %s\n", verb, printableKey(k))
		}
	}
	if jsonOut(cmd) {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	}
	if len(rep.Missing) > 0 {
		q := make([]string, len(rep.Missing))
		for i, k := range rep.Missing {
			q[i] = printableKey(k)
		}
		return fmt.Errorf("no entry for %s in %s", strings.Join(q, ", "), t.describe())
	}
	return nil
}
