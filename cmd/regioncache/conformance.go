package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/plugins"
)

func init() { register("conformance", newConformance) }

// conformanceFlags are the conformance command's flags.
type conformanceFlags struct {
	args    []string
	only    string
	large   string
	timeout time.Duration
}

func newConformance(e *env) *cobra.Command {
	cf := &conformanceFlags{}
	cmd := &cobra.Command{
		Use:   "conformance PLUGIN [--arg key=value ...] [--only check,...] [--large SIZE] [--timeout D]",
		Short: "run the backend conformance suite against a plugin executable and print a table of checks",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one plugin executable, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConformance(cmd.Context(), e, cf, args[0], jsonOut(cmd))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&cf.args, "arg", nil, "backend argument key=value (repeatable); {dir} in a value becomes each check's fresh directory, and an argument whose value contains {ttl} is passed (as a Go duration) only when the suite checks storage expiry")
	f.StringVar(&cf.only, "only", "", "comma-separated check names (or prefixes such as lock/) to run; default all")
	f.StringVar(&cf.large, "large", "", `size of the large-value round trip (default 64MiB), e.g. "256MiB"`)
	f.DurationVar(&cf.timeout, "timeout", 2*time.Minute, "limit for each check")
	return cmd
}

// runConformance runs the suite against the plugin executable bin.
func runConformance(ctx context.Context, e *env, cf *conformanceFlags, bin string, asJSON bool) error {
	args0 := backends.Args{}
	var ttlArgs []string
	for _, s := range cf.args {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return usagef("--arg %q: want key=value", s)
		}
		if strings.Contains(v, "{ttl}") {
			ttlArgs = append(ttlArgs, k)
		}
		args0[k] = v
	}
	argsFor := func(dir string, ttl time.Duration) backends.Args {
		a := backends.Args{}
		for k, v := range args0 {
			s := v.(string)
			if strings.Contains(s, "{ttl}") {
				if ttl == 0 {
					continue
				}
				s = strings.ReplaceAll(s, "{ttl}", ttl.String())
			}
			a[k] = strings.ReplaceAll(s, "{dir}", dir)
		}
		return a
	}
	if err := plugins.Probe(bin); err != nil {
		return err
	}
	h := conformance.Harness{
		Name: plugins.NameOf(bin),
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return plugins.Open(bin, argsFor(dir, 0))
		},
	}
	if len(ttlArgs) > 0 {
		h.OpenWithTTL = func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return plugins.Open(bin, argsFor(dir, ttl))
		}
	}
	opts := []conformance.Option{conformance.CheckTimeout(cf.timeout)}
	if cf.only != "" {
		opts = append(opts, conformance.Only(strings.Split(cf.only, ",")...))
	}
	if cf.large != "" {
		n, err := backends.ParseSize(cf.large)
		if err != nil || n <= 0 {
			return usagef("--large %q: want a size such as 64MiB", cf.large)
		}
		opts = append(opts, conformance.LargeValueSize(n))
	}
	rep := conformance.Check(ctx, h, opts...)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(e.stdout); err != nil {
		return err
	}
	if rep.Failed() {
		return fmt.Errorf("%s failed %d check(s): %s", rep.Name, len(rep.Failures()), strings.Join(rep.Failures(), ", "))
	}
	return nil
}
