package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	stress  time.Duration
	// Harness declarations a plugin's author makes on its behalf.
	lockEndsWithContext bool
	createdPrecision    time.Duration
}

func newConformance(e *env) *cobra.Command {
	cf := &conformanceFlags{}
	cmd := &cobra.Command{
		Use:   "conformance PLUGIN|NAME [--arg key=value ...] [--only check,...] [--large SIZE] [--timeout D] [--stress D]",
		Short: "run the backend conformance suite against a plugin (an executable, or the backend name of an installed or discoverable plugin) and print a table of checks",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one plugin executable or plugin backend name, got %d arguments", len(args))
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
	f.DurationVar(&cf.stress, "stress", 0, "repeat the race-hunting checks (concurrent, concurrent/own-keys, shared-storage) for this long each, e.g. 1m")
	f.BoolVar(&cf.lockEndsWithContext, "lock-ends-with-context", false, "the backend's lock is freed when the context it was taken with ends (enables lock/owner-context)")
	f.DurationVar(&cf.createdPrecision, "created-precision", 0, "how precisely the backend keeps an entry's creation time (default: to the nanosecond)")
	return cmd
}

// conformanceTarget is the plugin the conformance command checks.
type conformanceTarget struct {
	name string
	path string
	open func(args backends.Args) (backends.Backend, error)
}

// resolvePlugin finds the plugin target names: an executable's path, or the
// backend name of a plugin installed or found on the plugin path (a pinned
// plugin is checked against its checksum on every launch).
func resolvePlugin(target string) (conformanceTarget, error) {
	isPath := strings.ContainsRune(target, '/') || strings.ContainsRune(target, filepath.Separator)
	if !isPath {
		if st, err := os.Stat(target); err == nil && st.Mode().IsRegular() {
			isPath = true
		}
	}
	if isPath {
		return conformanceTarget{name: plugins.NameOf(target), path: target,
			open: func(args backends.Args) (backends.Backend, error) { return plugins.Open(target, args) }}, nil
	}
	if p, ok := plugins.Find(target); ok {
		return conformanceTarget{name: p.Name, path: p.Path,
			open: func(args backends.Args) (backends.Backend, error) { return p.Open(args) }}, nil
	}
	var known []string
	if ps, err := plugins.List(); err == nil {
		for _, p := range ps {
			if !p.Shadowed {
				known = append(known, p.Name)
			}
		}
	}
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return conformanceTarget{}, fmt.Errorf("conformance: %q is neither a plugin executable nor the backend name of an installed or discoverable plugin (plugins found: %s; searched %s)",
		target, list, strings.Join(plugins.Dirs(), string(os.PathListSeparator)))
}

// runConformance runs the suite against the plugin target: an executable's
// path or an installed or discoverable plugin's backend name.
func runConformance(ctx context.Context, e *env, cf *conformanceFlags, target string, asJSON bool) error {
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
	pl, err := resolvePlugin(target)
	if err != nil {
		return err
	}
	if err := plugins.Probe(pl.path, plugins.WithName(pl.name)); err != nil {
		return err
	}
	h := conformance.Harness{
		Name: pl.name,
		Open: func(ctx context.Context, dir string) (backends.Backend, error) {
			return pl.open(argsFor(dir, 0))
		},
		LockEndsWithContext: cf.lockEndsWithContext,
		CreatedPrecision:    cf.createdPrecision,
	}
	if len(ttlArgs) > 0 {
		h.OpenWithTTL = func(ctx context.Context, dir string, ttl time.Duration) (backends.Backend, error) {
			return pl.open(argsFor(dir, ttl))
		}
	}
	opts := []conformance.Option{conformance.CheckTimeout(cf.timeout)}
	if cf.stress > 0 {
		opts = append(opts, conformance.Stress(cf.stress))
	}
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
