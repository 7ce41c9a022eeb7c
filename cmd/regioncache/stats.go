package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register("stats", newStats) }

// statsReport is stats' -json output.
type statsReport struct {
	Cache string `json:"cache"`
	sizeInfo
}

func newStats(e *env) *cobra.Command {
	var (
		force bool
		tf    *targetFlags
	)
	cmd := &cobra.Command{
		Use:   "stats [DIR] [--backend NAME --arg k=v ... | --config FILE --prefix P]",
		Short: "size a cache: entries, logical bytes and (for directories) bytes on disk",
		Long: `stats reports how many entries a cache holds and how many bytes: the
payload bytes, and for directories the bytes allocated on disk. Backends are
sized by their StorageStats (backends.StatReporter), or else by listing.`,
		Example: `  regioncache stats /var/cache/app
  regioncache stats --backend redis --arg url=redis://localhost/0 -json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStats(cmd.Context(), e, cmd, tf, args, force)
		},
	}
	tf = addTargetFlags(cmd)
	cmd.Flags().BoolVar(&force, "progress", false, "show progress even when stderr is not a terminal")
	return cmd
}

func runStats(ctx context.Context, e *env, cmd *cobra.Command, tf *targetFlags, args []string, force bool) error {
	t, rest, err := tf.open(ctx, args)
	if err != nil {
		return err
	}
	defer t.close()
	if len(rest) > 0 {
		return usagef("unexpected arguments %q", rest)
	}
	p := newProgress(e, "scanning", force)
	si, err := t.stats(ctx, p)
	p.done()
	if err != nil {
		return err
	}
	if jsonOut(cmd) {
		return writeJSON(e.stdout, statsReport{Cache: t.describe(), sizeInfo: si})
	}
	_, isDir := t.(*dirTarget)
	fmt.Fprintf(e.stdout, "%s: %s\n", t.describe(), sizeLine(si, isDir))
	return nil
}
