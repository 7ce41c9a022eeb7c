package backends

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

var (
	registryMu sync.RWMutex
	factories  = make(map[string]Factory)
	finders    []Finder
)

// Register makes a backend factory available under name. It is meant to be
// called from the init function of the backend's package. Register panics if
// name is empty, f is nil, or name is already registered, like sql.Register.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" {
		panic("backends: Register with an empty name")
	}
	if f == nil {
		panic("backends: Register factory is nil for " + name)
	}
	if _, dup := factories[name]; dup {
		panic("backends: Register called twice for backend " + name)
	}
	factories[name] = f
}

// Finder supplies factories that are not registered in-process, such as
// out-of-process plugins found on disk. Finders are consulted, in the order
// they were added, for names that Register does not know.
type Finder interface {
	// Find returns the factory for name, if this finder has one.
	Find(name string) (Factory, bool)
	// Names lists the names this finder can supply.
	Names() []string
}

// AddFinder adds a source of backends consulted after the registered ones.
func AddFinder(f Finder) {
	registryMu.Lock()
	defer registryMu.Unlock()
	finders = append(finders, f)
}

// Names returns the sorted names of every registered backend and every
// backend the finders can supply.
func Names() []string {
	registryMu.RLock()
	seen := make(map[string]bool, len(factories))
	for n := range factories {
		seen[n] = true
	}
	fs := append([]Finder(nil), finders...)
	registryMu.RUnlock()
	for _, f := range fs {
		for _, n := range f.Names() {
			seen[n] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the factory registered under name, consulting the finders
// when no backend is registered under it.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	f, ok := factories[name]
	fs := append([]Finder(nil), finders...)
	registryMu.RUnlock()
	if ok {
		return f, true
	}
	for _, fd := range fs {
		if f, ok := fd.Find(name); ok {
			return f, true
		}
	}
	return nil, false
}

// Open opens the backend registered under name with args. An unknown name is
// an error wrapping ErrUnknownBackend that lists the known names (a missing
// blank import, such as _ "github.com/regioncache/regioncache/backends/all", is
// the usual cause).
func Open(name string, args Args) (Backend, error) {
	f, ok := Lookup(name)
	if !ok {
		known := Names()
		list := "none (import a backend package, e.g. _ \"github.com/regioncache/regioncache/backends/all\")"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return nil, fmt.Errorf("%w %q; known backends: %s", ErrUnknownBackend, name, list)
	}
	b, err := f(args)
	if err != nil {
		return nil, fmt.Errorf("open backend %q: %w", name, err)
	}
	return b, nil
}
