package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/regioncache/regioncache/plugins"
)

func init() {
	register(&command{
		name:  "plugin",
		usage: "plugin install [-dir D] [-name N] <binary> | plugin list [-json] | plugin verify [-dir D]",
		short: "install, list and verify backend plugins (REGIONCACHE_PLUGIN_PATH, then the per-user plugin directory)",
		run:   runPlugin,
	})
}

func runPlugin(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want a subcommand: install, list or verify")
	}
	switch args[0] {
	case "install":
		return pluginInstall(e, args[1:])
	case "list":
		return pluginList(e, args[1:])
	case "verify":
		return pluginVerify(e, args[1:])
	}
	return usagef("unknown subcommand %q: want install, list or verify", args[0])
}

func pluginInstall(e *env, args []string) error {
	fs := newFlagSet("plugin install", e)
	dir := fs.String("dir", "", "plugin directory to install into (default: the per-user directory)")
	name := fs.String("name", "", "backend name (default: from the file name regioncache-backend-<name>)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one plugin executable, got %d arguments", len(pos))
	}
	p, err := plugins.Install(pos[0], *dir, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "installed backend %q as %s\nsha256 %s (pinned in %s)\n", p.Name, p.Path, p.SHA256, plugins.ManifestName)
	return nil
}

func pluginList(e *env, args []string) error {
	fs := newFlagSet("plugin list", e)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ps, err := plugins.List()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if ps == nil {
			ps = []plugins.Plugin{}
		}
		if eerr := enc.Encode(ps); eerr != nil {
			return eerr
		}
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPINNED\tPATH")
	for _, p := range ps {
		pin := "no"
		if p.Pinned() {
			pin = "sha256:" + p.SHA256[:min(12, len(p.SHA256))]
		}
		path := p.Path
		if p.Shadowed {
			path += " (shadowed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, pin, path)
	}
	tw.Flush()
	if len(ps) == 0 {
		fmt.Fprintf(e.stdout, "no plugins in %v\n", plugins.Dirs())
	}
	return err
}

func pluginVerify(e *env, args []string) error {
	fs := newFlagSet("plugin verify", e)
	dir := fs.String("dir", "", "verify only this plugin directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var dirs []string
	if *dir != "" {
		dirs = []string{*dir}
	}
	rs, err := plugins.Verify(dirs...)
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPATH")
	bad := 0
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Status, r.Path)
		if r.Status == plugins.VerifyChanged || r.Status == plugins.VerifyMissing {
			bad++
		}
	}
	tw.Flush()
	for _, r := range rs {
		if r.Err != nil {
			fmt.Fprintln(e.stderr, r.Err)
		}
	}
	if err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d plugin(s) changed or missing since they were installed", bad)
	}
	return nil
}
