package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/plugins"
)

func init() { register("plugin", newPlugin) }

func newPlugin(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin install|list|verify|uninstall",
		Short: "install, list and verify backend plugins (REGIONCACHE_PLUGIN_PATH, then the per-user plugin directory)",
		Long: `Backend plugins are executables named regioncache-backend-<name>. Once
installed (or put in a directory of REGIONCACHE_PLUGIN_PATH), <name> is a
backend name like any other. install copies a plugin into a plugin directory
and pins its SHA-256, which is checked on every launch; verify re-checks the
pins; uninstall removes a plugin and its pin.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("want a subcommand: install, list, verify or uninstall")
			}
			return usagef("unknown subcommand %q: want install, list, verify or uninstall", args[0])
		},
	}
	cmd.AddCommand(newPluginInstall(e), newPluginList(e), newPluginVerify(e), newPluginUninstall(e))
	return cmd
}

func newPluginInstall(e *env) *cobra.Command {
	var dir, name string
	cmd := &cobra.Command{
		Use:   "install BINARY [--dir D] [--name N]",
		Short: "copy a plugin executable into a plugin directory and pin its SHA-256",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one plugin executable, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plugins.Install(args[0], dir, name)
			if err != nil {
				return err
			}
			if jsonOut(cmd) {
				return writeJSON(e.stdout, p)
			}
			fmt.Fprintf(e.stdout, "installed backend %q as %s\nsha256 %s (pinned in %s)\n", p.Name, p.Path, p.SHA256, plugins.ManifestName)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "plugin directory to install into (default: the per-user directory)")
	cmd.Flags().StringVar(&name, "name", "", "backend name (default: from the file name regioncache-backend-<name>)")
	return cmd
}

func newPluginList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list the plugins found on the plugin path, with their versions, protocol versions and pins",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := plugins.ListDescribed()
			if jsonOut(cmd) {
				if ps == nil {
					ps = []plugins.Described{}
				}
				if eerr := writeJSON(e.stdout, ps); eerr != nil {
					return eerr
				}
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tPROTOCOL\tPINNED\tPATH")
			for _, p := range ps {
				version, protocol := p.Version, fmt.Sprint(p.Protocol)
				if version == "" {
					version = "-"
				}
				if p.Error != "" {
					version, protocol = "?", "?"
				}
				pin := "no"
				if p.Pinned() {
					pin = "sha256:" + p.SHA256[:min(12, len(p.SHA256))]
				}
				path := p.Path
				if p.Shadowed {
					path += " (shadowed)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, version, protocol, pin, path)
			}
			tw.Flush()
			for _, p := range ps {
				if p.Error != "" {
					fmt.Fprintln(e.stderr, p.Error)
				}
			}
			if len(ps) == 0 {
				fmt.Fprintf(e.stdout, "no plugins in %v\n", plugins.Dirs())
			}
			return err
		},
	}
}

// verifyRow is one line of plugin verify's -json output.
type verifyRow struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Path   string `json:"path"`
	Error  string `json:"error,omitempty"`
}

func newPluginVerify(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "verify [--dir D]",
		Short: "check every installed plugin against its pinned SHA-256",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var dirs []string
			if dir != "" {
				dirs = []string{dir}
			}
			rs, err := plugins.Verify(dirs...)
			bad := 0
			rows := []verifyRow{}
			for _, r := range rs {
				if r.Status == plugins.VerifyChanged || r.Status == plugins.VerifyMissing {
					bad++
				}
				row := verifyRow{Name: r.Name, Status: string(r.Status), Path: r.Path}
				if r.Err != nil {
					row.Error = r.Err.Error()
				}
				rows = append(rows, row)
			}
			if jsonOut(cmd) {
				if eerr := writeJSON(e.stdout, rows); eerr != nil {
					return eerr
				}
			} else {
				tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tPATH")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Status, r.Path)
				}
				tw.Flush()
				for _, r := range rows {
					if r.Error != "" {
						fmt.Fprintln(e.stderr, r.Error)
					}
				}
			}
			if err != nil {
				return err
			}
			if bad > 0 {
				return fmt.Errorf("%d plugin(s) changed or missing since they were installed", bad)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "verify only this plugin directory")
	return cmd
}

func newPluginUninstall(e *env) *cobra.Command {
	var dir string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "uninstall NAME [--dir D] [--dry-run]",
		Short: "remove an installed plugin and its pin",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one plugin name, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if dryRun {
				var p plugins.Plugin
				found := false
				if dir != "" {
					ps, err := plugins.List(dir)
					for _, q := range ps {
						if q.Name == args[0] {
							p, found = q, true
						}
					}
					if !found && err != nil {
						return err
					}
				} else {
					p, found = plugins.Find(args[0])
				}
				if !found {
					return fmt.Errorf("no plugin %q to uninstall", args[0])
				}
				if jsonOut(cmd) {
					return writeJSON(e.stdout, struct {
						plugins.Plugin
						DryRun bool `json:"dry_run"`
					}{p, true})
				}
				fmt.Fprintf(e.stdout, "would remove backend %q: %s\n", p.Name, p.Path)
				return nil
			}
			p, err := plugins.Uninstall(dir, args[0])
			if err != nil {
				return err
			}
			if jsonOut(cmd) {
				return writeJSON(e.stdout, p)
			}
			fmt.Fprintf(e.stdout, "removed backend %q: %s\n", p.Name, p.Path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "plugin directory to remove it from (default: the first one holding it)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	return cmd
}
