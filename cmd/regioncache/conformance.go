package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/conformance"
	"github.com/regioncache/regioncache/plugins"
)

func init() {
	register(&command{
		name:  "conformance",
		usage: "conformance <plugin-binary> [--arg key=value ...] [--only check,...] [--large SIZE] [--timeout D] [--json]",
		short: "run the backend conformance suite against a plugin executable and print a table of checks",
		run:   runConformance,
	})
}

// argList collects repeated --arg key=value flags.
type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(s string) error { *a = append(*a, s); return nil }

// parseInterleaved parses flags that may come before or after positional
// arguments ("conformance ./p --arg a=b") and returns the positionals.
func parseInterleaved(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func runConformance(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("conformance", e)
	var kv argList
	fs.Var(&kv, "arg", "backend argument key=value (repeatable); {dir} in a value becomes each check's fresh directory, and an argument whose value contains {ttl} is passed (as a Go duration) only when the suite checks storage expiry")
	only := fs.String("only", "", "comma-separated check names (or prefixes such as lock/) to run; default all")
	large := fs.String("large", "", `size of the large-value round trip (default 64MiB), e.g. "256MiB"`)
	timeout := fs.Duration("timeout", 2*time.Minute, "limit for each check")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one plugin executable, got %d arguments", len(pos))
	}
	bin := pos[0]
	args0 := backends.Args{}
	var ttlArgs []string
	for _, s := range kv {
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
	opts := []conformance.Option{conformance.CheckTimeout(*timeout)}
	if *only != "" {
		opts = append(opts, conformance.Only(strings.Split(*only, ",")...))
	}
	if *large != "" {
		n, err := backends.ParseSize(*large)
		if err != nil || n <= 0 {
			return usagef("--large %q: want a size such as 64MiB", *large)
		}
		opts = append(opts, conformance.LargeValueSize(n))
	}
	rep := conformance.Check(ctx, h, opts...)
	if *asJSON {
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
