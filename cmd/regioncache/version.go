package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { register("version", newVersion) }

// versionInfo is what version prints: the module version and the version
// control information the go command stamped into the build.
type versionInfo struct {
	Version   string `json:"version"`            // module version, e.g. v1.2.0 or a pseudo-version
	Module    string `json:"module"`             // main module path
	Revision  string `json:"revision,omitempty"` // vcs.revision
	Time      string `json:"time,omitempty"`     // vcs.time
	Modified  bool   `json:"modified,omitempty"` // vcs.modified: built from a changed work tree
	GoVersion string `json:"go"`                 // toolchain that built the binary
	Platform  string `json:"platform"`           // GOOS/GOARCH
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "unknown", Module: "github.com/regioncache/regioncache", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersion(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the VCS revision it was built from, and the Go toolchain",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			if jsonOut(cmd) {
				return writeJSON(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "regioncache %s (%s)\n", v.Version, v.Module)
			if v.Revision != "" {
				mod := ""
				if v.Modified {
					mod = ", modified"
				}
				fmt.Fprintf(e.stdout, "revision %s (%s%s)\n", v.Revision, v.Time, mod)
			}
			fmt.Fprintf(e.stdout, "built with %s for %s\n", v.GoVersion, v.Platform)
			return nil
		},
	}
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	return nil
}
