package region

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// DisableEnv is the environment variable that turns regions into
// pass-through caches without a code change (epymorph's
// EPYMORPH_CACHE_DISABLED and EPYMORPH_CACHE_DISABLED_PATHS in one). It is
// read when a region is configured:
//
//	unset, "", 0, false, no, off   nothing is disabled
//	1, true, yes, on, all, *       every region is disabled
//	users, sessions                the regions named users and sessions
//	users/profile                  namespace profile of region users (Cached)
//	*/profile                      namespace profile of every region
//
// Entries are separated by commas or white space and matched exactly. A
// region's name is its WithName name, or its backend's name without one. A
// disabled region stores nothing and takes no locks: every GetOrCreate runs
// its creator, GetOrCreateFile hands back the creator's own file, and Get is
// always a miss. Configure logs once (at Info) that the region is disabled
// and why.
const DisableEnv = "REGIONCACHE_DISABLED"

// disabledByEnv reports whether DisableEnv disables the whole region named
// regionName, and if so a reason for the log ("REGIONCACHE_DISABLED=1",
// `REGIONCACHE_DISABLED lists "users"`).
func disabledByEnv(regionName string) (bool, string) {
	return disabledIn(os.Getenv(DisableEnv), regionName, "")
}

// disabledNamespaceByEnv reports whether DisableEnv disables namespace
// namespace of the region named regionName (the region itself being
// disabled disables all of its namespaces).
func disabledNamespaceByEnv(regionName, namespace string) (bool, string) {
	return disabledIn(os.Getenv(DisableEnv), regionName, namespace)
}

// disabledIn is the matcher behind disabledByEnv, on the variable's value v.
// An empty namespace asks about the region as a whole.
func disabledIn(v, regionName, namespace string) (bool, string) {
	v = strings.TrimSpace(v)
	switch strings.ToLower(v) {
	case "", "0", "false", "no", "off":
		return false, ""
	case "1", "true", "yes", "on", "all", "*":
		return true, fmt.Sprintf("%s=%s", DisableEnv, v)
	}
	for _, entry := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		reg, ns, hasNS := strings.Cut(entry, "/")
		if !hasNS {
			if reg == regionName || reg == "*" {
				return true, fmt.Sprintf("%s lists %q", DisableEnv, entry)
			}
			continue
		}
		if namespace != "" && ns == namespace && (reg == regionName || reg == "*") {
			return true, fmt.Sprintf("%s lists %q", DisableEnv, entry)
		}
	}
	return false, ""
}

// openOrPassThrough is backends.Open for Configure, unless DisableEnv
// disables the region: then it logs that once and returns a pass-through
// backend instead, without opening the named one (a disabled region needs
// no server and no directory).
func openOrPassThrough(cfg *config, backend string, args backends.Args) (backends.Backend, error) {
	name := cmp.Or(cfg.name, backend)
	off, why := disabledByEnv(name)
	if !off {
		return backends.Open(backend, args)
	}
	logDisabled(cfg, name, backend, why)
	return passThrough{}, nil
}

// logDisabled logs, once per Configure, that a region is disabled and why.
func logDisabled(cfg *config, name, backend, why string) {
	logger := cfg.logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.Info("regioncache: region disabled: every call runs its creator and nothing is cached",
		"region", name, "backend", backend, "reason", why)
}

// namespaceDisabled reports whether DisableEnv, as read when r was
// configured, disables namespace ns of r: its loaders then call their
// function directly.
func (r *Region) namespaceDisabled(ns string) bool {
	s := r.state.Load()
	if s == nil || s.disableEnv == "" {
		return false
	}
	off, _ := disabledIn(s.disableEnv, s.name, ns)
	return off
}

// passThrough is the backend of a disabled region: it keeps nothing.
// It is a FileStore so that GetOrCreateFile hands the creator's own file
// back rather than failing.
type passThrough struct{}

var (
	_ backends.Backend   = passThrough{}
	_ backends.FileStore = passThrough{}
)

func (passThrough) Get(context.Context, string) (backends.Entry, error) {
	return backends.Entry{}, fmt.Errorf("region disabled by %s: %w", DisableEnv, backends.ErrNotFound)
}
func (passThrough) Set(context.Context, string, backends.Entry) error { return nil }
func (passThrough) Delete(context.Context, string) error              { return nil }
func (passThrough) Close() error                                      { return nil }
func (passThrough) Discards() bool                                    { return true }
func (passThrough) ProcessLocal() bool                                { return true }

func (passThrough) OpenFile(context.Context, string) (*os.File, backends.Entry, error) {
	return nil, backends.Entry{}, fmt.Errorf("region disabled by %s: %w", DisableEnv, backends.ErrNotFound)
}

// StoreFile keeps nothing. The creator's file is handed back to the caller
// by GetOrCreateFile; when the call allowed a move, the file's name is
// removed (where the system allows removing an open file) so that creators
// writing into CreateTemp files leave nothing behind.
func (passThrough) StoreFile(_ context.Context, _ string, f *os.File, _ backends.Entry, move bool) error {
	if move {
		fi, err1 := f.Stat()
		named, err2 := os.Lstat(f.Name())
		if err1 == nil && err2 == nil && fi.Mode().IsRegular() && os.SameFile(fi, named) {
			_ = os.Remove(f.Name())
		}
	}
	return nil
}
