package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/all" // every in-tree backend, by name
	"github.com/regioncache/regioncache/internal/fsstore"
	"github.com/regioncache/regioncache/plugins"
	"github.com/regioncache/regioncache/region/yamlconfig"
)

// A target is the cache a reading command works on: a cache directory
// (read through internal/fsstore, which knows on-disk sizes and access
// times) or any backend opened by name, reached through the optional
// interfaces it has. Operations a backend lacks fail with an error wrapping
// backends.ErrUnsupported that names what is missing.
type target interface {
	// describe names the cache for headings: "filesystem cache /var/c".
	describe() string
	// list calls fn for each entry, reserved records included.
	list(ctx context.Context, fn func(entry) error, p *progress) error
	// stats sizes the cache.
	stats(ctx context.Context, p *progress) (sizeInfo, error)
	// info describes one entry by its backend key; a miss wraps
	// backends.ErrNotFound.
	info(ctx context.Context, key string) (entry, error)
	// delete removes one entry by its backend key; an absent key is not
	// an error.
	delete(ctx context.Context, key string) error
	// evictTag removes every entry with tag and says how many it removed.
	evictTag(ctx context.Context, tag string, p *progress) (int, error)
	close() error
}

// entry is one listed entry. Key is the backend's key; User is the key as
// the region's caller wrote it (see userKey).
type entry struct {
	Key      string    `json:"key"`
	Reserved bool      `json:"reserved,omitempty"`
	Size     int64     `json:"size"`                 // logical: payload bytes
	Disk     int64     `json:"disk_bytes,omitempty"` // allocated on disk; 0 when the backend does not say
	File     int64     `json:"file_bytes,omitempty"` // bytes of the entry's files, as cache_size counts them
	Created  time.Time `json:"created"`
	Accessed time.Time `json:"accessed,omitzero"`
	Version  int       `json:"version"`
	Tags     []string  `json:"tags,omitempty"`
	Path     string    `json:"path,omitempty"` // the entry file, for directories
}

// sizeInfo is a cache's size.
type sizeInfo struct {
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`                // logical, or as the backend reports
	Disk    int64 `json:"disk_bytes,omitempty"` // allocated on disk, when known
}

// pruneResult reports what prune removed (or, in a dry run, would remove).
type pruneResult struct {
	Expired int   `json:"expired"`
	Evicted int   `json:"evicted"`
	Freed   int64 `json:"freed_bytes"`
}

// The region keeps its own records (the region-wide invalidation marks)
// under keys that start with one NUL byte and doubles a leading NUL of a
// caller's key (region/region.go), so that no caller's key reaches them.
// userKey undoes that for display; reserved records are reported as such.
func userKey(backendKey string) (key string, reserved bool) {
	if strings.HasPrefix(backendKey, "\x00\x00") {
		return backendKey[1:], false
	}
	if strings.HasPrefix(backendKey, "\x00") {
		return backendKey, true
	}
	return backendKey, false
}

// backendKey maps a caller's key to the key the region stores it under
// (without a key mangler or namespace, which the CLI cannot know).
func backendKey(k string) string {
	if strings.HasPrefix(k, "\x00") {
		return "\x00" + k
	}
	return k
}

// targetFlags are the flags that select a cache other than by directory.
type targetFlags struct {
	backend string
	args    []string
	config  string
	prefix  string
}

func addTargetFlags(cmd *cobra.Command) *targetFlags {
	tf := &targetFlags{}
	f := cmd.Flags()
	f.StringVar(&tf.backend, "backend", "", "backend name (registered, or a plugin's name or executable path) instead of a directory")
	f.StringArrayVar(&tf.args, "arg", nil, "backend argument key=value (repeatable), with --backend")
	f.StringVar(&tf.config, "config", "", "YAML or JSON config file to take the backend and its arguments from, with --prefix")
	f.StringVar(&tf.prefix, "prefix", "", `the region's prefix in --config, such as "cache.users."`)
	cmd.RegisterFlagCompletionFunc("backend", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return backends.Names(), cobra.ShellCompDirectiveNoFileComp
	})
	return tf
}

// selected reports whether the flags name the cache (so no positional
// directory is expected).
func (tf *targetFlags) selected() bool { return tf.backend != "" || tf.config != "" }

// open opens the cache the flags or the first positional argument name and
// returns the remaining positional arguments.
func (tf *targetFlags) open(ctx context.Context, args []string) (target, []string, error) {
	switch {
	case tf.backend != "" && tf.config != "":
		return nil, nil, usagef("--backend and --config: give one of them")
	case tf.config != "":
		if len(tf.args) > 0 {
			return nil, nil, usagef("--arg: the arguments come from --config %s", tf.config)
		}
		name, a, err := configBackend(tf.config, tf.prefix)
		if err != nil {
			return nil, nil, err
		}
		t, err := openBackend(name, a)
		return t, args, err
	case tf.backend != "":
		if tf.prefix != "" {
			return nil, nil, usagef("--prefix goes with --config")
		}
		a := backends.Args{}
		for _, s := range tf.args {
			k, v, ok := strings.Cut(s, "=")
			if !ok || k == "" {
				return nil, nil, usagef("--arg %q: want key=value", s)
			}
			a[k] = v
		}
		t, err := openBackend(tf.backend, a)
		return t, args, err
	}
	if len(tf.args) > 0 || tf.prefix != "" {
		return nil, nil, usagef("--arg goes with --backend, --prefix with --config")
	}
	if len(args) == 0 {
		return nil, nil, usagef("want a cache directory, or --backend NAME [--arg k=v ...], or --config FILE --prefix P")
	}
	s, err := openCacheDir(args[0])
	if err != nil {
		return nil, nil, err
	}
	return &dirTarget{s: s}, args[1:], nil
}

// configBackend reads the backend name and arguments of the region under
// prefix in a config file, as region.ConfigureFromMap would.
func configBackend(path, prefix string) (string, backends.Args, error) {
	m, err := yamlconfig.Load(path)
	if err != nil {
		return "", nil, err
	}
	v, ok := m[prefix+"backend"]
	name, isString := v.(string)
	if !ok || !isString || name == "" {
		var have []string
		for k := range m {
			if b, ok := strings.CutSuffix(k, "backend"); ok {
				have = append(have, fmt.Sprintf("%q", b))
			}
		}
		sort.Strings(have)
		hint := "no region in the file names a backend"
		if len(have) > 0 {
			hint = "prefixes with a backend: " + strings.Join(have, ", ")
		}
		return "", nil, usagef("--config %s has no %q (--prefix %q); %s", path, prefix+"backend", prefix, hint)
	}
	a := backends.Args{}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix+"arguments."); ok {
			a[rest] = v
		}
	}
	return name, a, nil
}

// openBackend opens a backend by registered name, by the name of a plugin on
// the plugin path, or by a plugin executable's path.
func openBackend(name string, a backends.Args) (target, error) {
	if strings.ContainsRune(name, os.PathSeparator) || strings.ContainsRune(name, '/') {
		b, err := plugins.Open(name, a)
		if err != nil {
			return nil, err
		}
		return &backendTarget{name: plugins.NameOf(name), b: b}, nil
	}
	if _, ok := backends.Lookup(name); !ok {
		return nil, usagef("--backend %q: unknown backend; known: %s (plugins are found in %s)",
			name, strings.Join(backends.Names(), ", "), strings.Join(plugins.Dirs(), string(os.PathListSeparator)))
	}
	b, err := backends.Open(name, a)
	if err != nil {
		return nil, err
	}
	return &backendTarget{name: name, b: b}, nil
}

// unsupported says what a backend lacks for an operation.
func unsupported(name, op, iface string, cause error) error {
	if cause == nil {
		cause = backends.ErrUnsupported
	}
	return fmt.Errorf("backend %s cannot %s (it does not implement backends.%s): %w", name, op, iface, cause)
}

// backendTarget is any backend, reached through its optional interfaces.
type backendTarget struct {
	name string
	b    backends.Backend
}

func (t *backendTarget) describe() string { return t.name + " backend" }
func (t *backendTarget) close() error     { return t.b.Close() }

func (t *backendTarget) list(ctx context.Context, fn func(entry) error, p *progress) error {
	l, ok := t.b.(backends.Lister)
	if !ok {
		return unsupported(t.name, "list its entries", "Lister", nil)
	}
	n := 0
	err := l.List(ctx, func(x backends.EntryInfo) error {
		n++
		p.count(n)
		return fn(entry{Key: x.Key, Size: x.Size, Created: x.Created, Version: x.Version, Tags: x.Tags})
	})
	if errors.Is(err, backends.ErrUnsupported) {
		return unsupported(t.name, "list its entries", "Lister", err)
	}
	return err
}

func (t *backendTarget) stats(ctx context.Context, p *progress) (sizeInfo, error) {
	if s, ok := t.b.(backends.StatReporter); ok {
		st, err := s.StorageStats(ctx)
		if err == nil {
			return sizeInfo{Entries: st.Entries, Bytes: st.Bytes}, nil
		}
		if !errors.Is(err, backends.ErrUnsupported) {
			return sizeInfo{}, err
		}
	}
	// No StorageStats: add up a listing.
	var si sizeInfo
	err := t.list(ctx, func(x entry) error {
		si.Entries++
		si.Bytes += x.Size
		return nil
	}, p)
	if errors.Is(err, backends.ErrUnsupported) {
		return si, unsupported(t.name, "report its size", "StatReporter or backends.Lister", err)
	}
	return si, err
}

func (t *backendTarget) info(ctx context.Context, key string) (entry, error) {
	e, err := t.b.Get(ctx, key)
	if err != nil {
		return entry{}, err
	}
	return entry{Key: key, Size: int64(len(e.Payload)), Created: e.Created, Version: e.Version, Tags: e.Tags}, nil
}

func (t *backendTarget) delete(ctx context.Context, key string) error {
	return t.b.Delete(ctx, key)
}

func (t *backendTarget) evictTag(ctx context.Context, tag string, p *progress) (int, error) {
	te, ok := t.b.(backends.TagEvicter)
	if !ok {
		return 0, unsupported(t.name, "evict by tag", "TagEvicter", nil)
	}
	n, err := te.EvictTag(ctx, tag)
	if errors.Is(err, backends.ErrUnsupported) {
		return n, unsupported(t.name, "evict by tag", "TagEvicter", err)
	}
	return n, err
}

// dirTarget is a filesystem or rawfs cache directory.
type dirTarget struct{ s *fsstore.Store }

func (t *dirTarget) describe() string {
	return kindName(t.s.Options().Kind) + " cache " + t.s.Dir()
}
func (t *dirTarget) close() error { return t.s.Close() }

func dirEntry(x fsstore.EntryInfo) entry {
	return entry{
		Key: x.Key, Size: x.Size, Created: x.Created, Accessed: x.Accessed, Version: x.Version, Tags: x.Tags,
		File: x.Disk, Disk: allocated(x.Path) + allocated(x.DataPath), Path: x.Path,
	}
}

func (t *dirTarget) list(ctx context.Context, fn func(entry) error, p *progress) error {
	return t.s.Walk(ctx, func(x fsstore.EntryInfo) error { return fn(dirEntry(x)) }, p.shards)
}

func (t *dirTarget) stats(ctx context.Context, p *progress) (sizeInfo, error) {
	var si sizeInfo
	err := t.list(ctx, func(x entry) error {
		si.Entries++
		si.Bytes += x.Size
		si.Disk += x.Disk
		return nil
	}, p)
	return si, err
}

func (t *dirTarget) info(ctx context.Context, key string) (entry, error) {
	x, err := t.s.Info(ctx, key)
	if err != nil {
		return entry{}, err
	}
	return dirEntry(x), nil
}

func (t *dirTarget) delete(ctx context.Context, key string) error {
	err := t.s.RemoveKey(ctx, key)
	if errors.Is(err, fsstore.ErrNoEntry) {
		return nil
	}
	return err
}

func (t *dirTarget) evictTag(ctx context.Context, tag string, p *progress) (int, error) {
	var keys []string
	err := t.list(ctx, func(x entry) error {
		if slices.Contains(x.Tags, tag) {
			keys = append(keys, x.Key)
		}
		return nil
	}, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		err := t.s.RemoveKey(ctx, k)
		if errors.Is(err, fsstore.ErrNoEntry) {
			continue // removed meanwhile
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// victim is one entry a prune removes, and why.
type victim struct {
	entry
	expired bool
}

func (r *pruneResult) add(v victim) {
	if v.expired {
		r.Expired++
	} else {
		r.Evicted++
	}
	r.Freed += v.size()
}

// size is what an entry counts for -max-size: its files' bytes where known
// (as cache_size counts), else its payload.
func (x entry) size() int64 {
	if x.File > 0 {
		return x.File
	}
	return x.Size
}

// planPrune says what a prune removes: entries created before before (if
// not zero), then, while the rest exceeds maxBytes (if not negative; 0
// empties the cache), the least
// recently used (by access time where the backend keeps one, else the
// oldest). The region's reserved records are never removed: dropping an
// invalidation mark would make invalidated values valid again.
func planPrune(all []entry, before time.Time, maxBytes int64) []victim {
	var plan []victim
	var rest []entry
	var total int64
	for _, x := range all {
		if _, reserved := userKey(x.Key); reserved {
			continue
		}
		if !before.IsZero() && !x.Created.IsZero() && x.Created.Before(before) {
			plan = append(plan, victim{entry: x, expired: true})
			continue
		}
		rest = append(rest, x)
		total += x.size()
	}
	if maxBytes < 0 {
		return plan
	}
	last := func(x entry) time.Time {
		if x.Accessed.After(x.Created) {
			return x.Accessed
		}
		return x.Created
	}
	slices.SortStableFunc(rest, func(a, b entry) int { return last(a).Compare(last(b)) })
	for _, x := range rest {
		if total <= maxBytes {
			break
		}
		plan = append(plan, victim{entry: x})
		total -= x.size()
	}
	return plan
}
