package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// EnvPath names the environment variable holding plugin directories to
// search before DefaultDir, as a path list (filepath.SplitList: ':'
// separated, ';' on Windows).
const EnvPath = "REGIONCACHE_PLUGIN_PATH"

// ManifestName is the file, in a plugin directory, that pins the SHA-256 of
// each plugin installed there.
const ManifestName = "regioncache-plugins.json"

// DefaultDir returns the per-user plugin directory:
// os.UserConfigDir()/regioncache/plugins (for example
// ~/.config/regioncache/plugins on Linux).
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("plugins: no per-user plugin directory: %w", err)
	}
	return filepath.Join(d, "regioncache", "plugins"), nil
}

// Dirs returns the directories searched for plugins, in order: those of
// REGIONCACHE_PLUGIN_PATH, then DefaultDir. Empty entries are dropped.
func Dirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(EnvPath)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if d, err := DefaultDir(); err == nil {
		dirs = append(dirs, d)
	}
	return dirs
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidName reports whether name can be a plugin's backend name: letters,
// digits, '_', '.' and '-', not starting with a punctuation mark.
func ValidName(name string) bool { return nameRE.MatchString(name) && !strings.HasSuffix(name, ".exe") }

// Plugin is a plugin executable found in a plugin directory.
type Plugin struct {
	// Name is the backend name the plugin is available under.
	Name string `json:"name"`
	// Path is the executable.
	Path string `json:"path"`
	// Dir is the plugin directory it was found in.
	Dir string `json:"dir"`
	// SHA256 is the checksum pinned in Dir's manifest, hex encoded; empty
	// when the plugin was put there by hand rather than by Install.
	SHA256 string `json:"sha256,omitempty"`
	// Shadowed is set by List for a plugin hidden by one of the same name
	// in an earlier directory.
	Shadowed bool `json:"shadowed,omitempty"`
}

// Pinned reports whether the plugin's checksum is pinned.
func (p Plugin) Pinned() bool { return p.SHA256 != "" }

// Open starts the plugin and opens its backend with args; a pinned plugin
// is checked against its checksum first (see Open).
func (p Plugin) Open(args backends.Args, opts ...Option) (*Backend, error) {
	o := []Option{WithName(p.Name)}
	if p.Pinned() {
		sum, err := hex.DecodeString(p.SHA256)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w: the manifest in %s has a malformed sha256 %q", p.Name, ErrChecksumMismatch, p.Dir, p.SHA256)
		}
		o = append(o, WithChecksum(sum))
	}
	return Open(p.Path, args, append(o, opts...)...)
}

// manifest is the JSON document in ManifestName.
type manifest struct {
	Version int                      `json:"version"`
	Plugins map[string]manifestEntry `json:"plugins"`
}

type manifestEntry struct {
	File      string    `json:"file"`
	SHA256    string    `json:"sha256"`
	Installed time.Time `json:"installed"`
	Source    string    `json:"source,omitempty"`
}

// readManifest reads dir's manifest; a missing one is empty. A corrupt
// manifest is an error: pins must not silently vanish.
func readManifest(dir string) (*manifest, error) {
	m := &manifest{Version: 1, Plugins: map[string]manifestEntry{}}
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("plugins: corrupt manifest %s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Plugins == nil {
		m.Plugins = map[string]manifestEntry{}
	}
	return m, nil
}

func writeManifest(dir string, m *manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeAtomic(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic writes a file through a temporary file and a rename.
func writeAtomic(path string, mode os.FileMode, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func isExecutable(fi fs.FileInfo) bool {
	if !fi.Mode().IsRegular() {
		return false
	}
	return runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0
}

// inDir returns the plugin called name in dir.
func inDir(dir, name string) (Plugin, bool) {
	path := filepath.Join(dir, exe(Prefix+name))
	fi, err := os.Stat(path)
	if err != nil || !isExecutable(fi) {
		return Plugin{}, false
	}
	p := Plugin{Name: name, Path: path, Dir: dir}
	if m, err := readManifest(dir); err == nil {
		p.SHA256 = m.Plugins[name].SHA256
	} else {
		// A corrupt manifest pins everything to "unknown": refuse rather
		// than run unverified.
		p.SHA256 = "corrupt-manifest"
	}
	return p, true
}

func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

// Find returns the plugin serving backend name: the first executable named
// regioncache-backend-<name> in Dirs.
func Find(name string) (Plugin, bool) {
	if !ValidName(name) {
		return Plugin{}, false
	}
	for _, d := range Dirs() {
		if p, ok := inDir(d, name); ok {
			return p, true
		}
	}
	return Plugin{}, false
}

// List returns every plugin in dirs (Dirs() when none are given), ordered
// by directory then name. A plugin hidden by one of the same name in an
// earlier directory is listed with Shadowed set. A directory that does not
// exist (or cannot be read) is an error, wrapping fs.ErrNotExist when
// missing, next to the plugins of the others: a misspelt
// REGIONCACHE_PLUGIN_PATH must not look like an empty one. (The per-user
// DefaultDir, never created until a first Install, is only an error when it
// is the only directory searched.)
func List(dirs ...string) ([]Plugin, error) {
	dirs, optional := searched(dirs)
	var out []Plugin
	var errs []error
	seen := map[string]bool{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			if d != optional {
				errs = append(errs, fmt.Errorf("plugins: no plugin directory %s: %w", d, err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugins: listing %s: %w", d, err))
			continue
		}
		var names []string
		for _, e := range ents {
			n := e.Name()
			if runtime.GOOS == "windows" {
				if !strings.HasSuffix(n, ".exe") {
					continue
				}
				n = strings.TrimSuffix(n, ".exe")
			}
			if rest, ok := strings.CutPrefix(n, Prefix); ok && ValidName(rest) {
				names = append(names, rest)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p, ok := inDir(d, n)
			if !ok {
				continue
			}
			p.Shadowed = seen[n]
			seen[n] = true
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

// searched returns the directories List and Verify search (dirs, or
// Dirs()) and the one that may be missing without an error: DefaultDir,
// when other directories are searched too and none was given.
func searched(dirs []string) (all []string, optional string) {
	if len(dirs) > 0 {
		return dirs, ""
	}
	dirs = Dirs()
	if d, err := DefaultDir(); err == nil && len(dirs) > 1 {
		optional = d
	}
	return dirs, optional
}

// Described is a plugin with what it says about itself, for listings.
type Described struct {
	Plugin
	Info
	// Error says why the plugin could not be asked (it would not start, is
	// no plugin, or changed since it was pinned).
	Error string `json:"error,omitempty"`
}

// Describe starts the plugin (checking its pin, if any), asks it for its
// version and protocol version, and stops it.
func (p Plugin) Describe(opts ...Option) (Info, error) {
	o := []Option{WithName(p.Name)}
	if p.Pinned() {
		sum, err := hex.DecodeString(p.SHA256)
		if err != nil {
			return Info{}, fmt.Errorf("plugin %s: %w: the manifest in %s has a malformed sha256 %q", p.Name, ErrChecksumMismatch, p.Dir, p.SHA256)
		}
		o = append(o, WithChecksum(sum))
	}
	return Describe(p.Path, append(o, opts...)...)
}

// ListDescribed is List, with each plugin's own account of its version and
// protocol version (each is started once, then stopped; shadowed plugins
// too). A plugin that cannot be asked is listed with Error set; the error
// returned is List's.
func ListDescribed(dirs ...string) ([]Described, error) {
	ps, err := List(dirs...)
	out := make([]Described, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, derr := p.Describe()
			out[i] = Described{Plugin: p, Info: in}
			if derr != nil {
				out[i].Error = derr.Error()
			}
		}()
	}
	wg.Wait()
	return out, err
}

// Uninstall removes the plugin called name from dir (the first plugin
// directory holding it when dir is empty): its executable and its pin in
// the directory's manifest. It returns the plugin removed. A name found in
// no directory is an error wrapping fs.ErrNotExist.
func Uninstall(dir, name string) (Plugin, error) {
	if !ValidName(name) {
		return Plugin{}, fmt.Errorf("%w: plugin name %q: want letters, digits, '_', '.' or '-'", backends.ErrBadArgument, name)
	}
	var p Plugin
	if dir == "" {
		for _, d := range Dirs() {
			if q, ok := inDir(d, name); ok {
				p = q
				break
			}
			if m, err := readManifest(d); err == nil && m.Plugins[name].SHA256 != "" {
				p = Plugin{Name: name, Path: filepath.Join(d, exe(Prefix+name)), Dir: d} // pinned, binary gone
				break
			}
		}
		if p.Dir == "" {
			return Plugin{}, fmt.Errorf("plugins: uninstall %s: no plugin of that name in %s: %w", name, strings.Join(Dirs(), string(filepath.ListSeparator)), fs.ErrNotExist)
		}
	} else {
		p = Plugin{Name: name, Path: filepath.Join(dir, exe(Prefix+name)), Dir: dir}
	}
	m, err := readManifest(p.Dir)
	if err != nil {
		return Plugin{}, err
	}
	p.SHA256 = m.Plugins[name].SHA256
	_, pinned := m.Plugins[name]
	err = os.Remove(p.Path)
	if errors.Is(err, fs.ErrNotExist) && !pinned {
		return Plugin{}, fmt.Errorf("plugins: uninstall %s: %w", name, err)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Plugin{}, fmt.Errorf("plugins: uninstall %s: %w", name, err)
	}
	if pinned {
		delete(m.Plugins, name)
		if err := writeManifest(p.Dir, m); err != nil {
			return Plugin{}, fmt.Errorf("plugins: uninstall %s: writing the manifest: %w", name, err)
		}
	}
	return p, nil
}

// finder makes plugins found on disk available to backends.Open.
type finder struct{}

func (finder) Find(name string) (backends.Factory, bool) {
	if serving.Load() {
		return nil, false
	}
	p, ok := Find(name)
	if !ok {
		return nil, false
	}
	return func(args backends.Args) (backends.Backend, error) { return p.Open(args) }, true
}

func (finder) Names() []string {
	if serving.Load() {
		return nil
	}
	ps, _ := List()
	var names []string
	for _, p := range ps {
		if !p.Shadowed {
			names = append(names, p.Name)
		}
	}
	return names
}

// serving is set by Serve: a plugin process never launches plugins by name
// (it would find itself on REGIONCACHE_PLUGIN_PATH and recurse); it can
// still Open a plugin by path.
var serving atomic.Bool

func init() {
	hs := Handshake()
	if os.Getenv(hs.MagicCookieKey) == hs.MagicCookieValue {
		serving.Store(true) // started by a host: this is a plugin process
	}
	backends.AddFinder(finder{})
}

// Install copies the plugin executable src into dir (DefaultDir when dir is
// empty, created if needed) as regioncache-backend-<name>, and pins its
// SHA-256 in dir's manifest. name defaults to the backend name in src's
// file name (which must then start with regioncache-backend-).
//
// Before copying, Install starts src once to check that it is a regioncache
// plugin speaking a protocol version this host speaks (without opening a
// backend). Installing over an existing plugin of the same name replaces it
// and its pin.
func Install(src, dir, name string) (Plugin, error) {
	if name == "" {
		base := filepath.Base(src)
		if runtime.GOOS == "windows" {
			base = strings.TrimSuffix(base, ".exe")
		}
		rest, ok := strings.CutPrefix(base, Prefix)
		if !ok {
			return Plugin{}, fmt.Errorf("%w: plugin name: %s is not named %s<name>; give the name explicitly", backends.ErrBadArgument, src, Prefix)
		}
		name = rest
	}
	if !ValidName(name) {
		return Plugin{}, fmt.Errorf("%w: plugin name %q: want letters, digits, '_', '.' or '-'", backends.ErrBadArgument, name)
	}
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return Plugin{}, err
		}
		dir = d
	}
	fi, err := os.Stat(src)
	if err != nil {
		return Plugin{}, fmt.Errorf("plugins: install: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Plugin{}, fmt.Errorf("%w: install: %s is not a regular file", backends.ErrBadArgument, src)
	}
	if err := Probe(src); err != nil {
		return Plugin{}, fmt.Errorf("plugins: install %s: %w", src, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Plugin{}, fmt.Errorf("plugins: install: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return Plugin{}, fmt.Errorf("plugins: install: %w", err)
	}
	defer in.Close()
	h := sha256.New()
	dst := filepath.Join(dir, exe(Prefix+name))
	if err := writeAtomic(dst, 0o755, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), in)
		return err
	}); err != nil {
		return Plugin{}, fmt.Errorf("plugins: install: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	m, err := readManifest(dir)
	if err != nil {
		return Plugin{}, err
	}
	abs, _ := filepath.Abs(src)
	m.Plugins[name] = manifestEntry{File: filepath.Base(dst), SHA256: sum, Installed: time.Now().UTC(), Source: abs}
	if err := writeManifest(dir, m); err != nil {
		return Plugin{}, fmt.Errorf("plugins: install: writing the manifest: %w", err)
	}
	return Plugin{Name: name, Path: dst, Dir: dir, SHA256: sum}, nil
}

// VerifyStatus is the outcome of verifying one plugin.
type VerifyStatus string

// The outcomes of Verify.
const (
	VerifyOK       VerifyStatus = "ok"       // the binary matches its pin
	VerifyChanged  VerifyStatus = "changed"  // the binary differs from its pin: it will be refused
	VerifyMissing  VerifyStatus = "missing"  // pinned, but the binary is gone
	VerifyUnpinned VerifyStatus = "unpinned" // not installed by Install: runs unchecked
)

// VerifyResult is the verification of one plugin.
type VerifyResult struct {
	Plugin
	Status VerifyStatus `json:"status"`
	// Actual is the binary's SHA-256 (hex), when it could be read.
	Actual string `json:"actual,omitempty"`
	// Err says what went wrong, for changed and missing plugins.
	Err error `json:"-"`
	// Error is Err's message, for JSON.
	Error string `json:"error,omitempty"`
}

// Verify checks every plugin in dirs (Dirs() when none are given) against
// the SHA-256 pinned in its directory's manifest. It returns one result per
// plugin and per pin without a binary; the error is for directories or
// manifests that could not be read.
func Verify(dirs ...string) ([]VerifyResult, error) {
	dirs, optional := searched(dirs)
	var out []VerifyResult
	var errs []error
	defer func() {
		for i := range out {
			if out[i].Err != nil {
				out[i].Error = out[i].Err.Error()
			}
		}
	}()
	for _, d := range dirs {
		m, err := readManifest(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found := map[string]bool{}
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			if d != optional {
				errs = append(errs, fmt.Errorf("plugins: no plugin directory %s: %w", d, err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
		for _, e := range ents {
			n := strings.TrimSuffix(e.Name(), ".exe")
			rest, ok := strings.CutPrefix(n, Prefix)
			if !ok || !ValidName(rest) {
				continue
			}
			p, ok := inDir(d, rest)
			if !ok {
				continue
			}
			found[rest] = true
			out = append(out, verifyOne(p))
		}
		var pinned []string
		for n := range m.Plugins {
			if !found[n] {
				pinned = append(pinned, n)
			}
		}
		sort.Strings(pinned)
		for _, n := range pinned {
			p := Plugin{Name: n, Path: filepath.Join(d, exe(Prefix+n)), Dir: d, SHA256: m.Plugins[n].SHA256}
			out = append(out, VerifyResult{Plugin: p, Status: VerifyMissing,
				Err: fmt.Errorf("plugin %s: pinned in %s but %s is missing", n, filepath.Join(d, ManifestName), p.Path)})
		}
	}
	return out, errors.Join(errs...)
}

func verifyOne(p Plugin) VerifyResult {
	r := VerifyResult{Plugin: p}
	sum, err := fileSHA256(p.Path)
	if err != nil {
		r.Status, r.Err = VerifyMissing, fmt.Errorf("plugin %s: %w", p.Name, err)
		return r
	}
	r.Actual = hex.EncodeToString(sum)
	switch {
	case !p.Pinned():
		r.Status = VerifyUnpinned
	case r.Actual == p.SHA256:
		r.Status = VerifyOK
	default:
		r.Status = VerifyChanged
		r.Err = fmt.Errorf("plugin %s: %w: %s has SHA-256 %s, pinned %s", p.Name, ErrChecksumMismatch, p.Path, r.Actual, p.SHA256)
	}
	return r
}
