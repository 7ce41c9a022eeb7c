package backends

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regioncache/regioncache/lock"
)

// Wrapper wraps a backend in a proxy (dogpile's ProxyBackend). It returns the
// backend the region uses instead of next.
type Wrapper func(next Backend) (Backend, error)

var (
	wrapMu   sync.RWMutex
	wrappers = map[string]func(Args) (Wrapper, error){}
)

// RegisterWrapper makes a wrapper available by name to configuration: the
// region argument "wrap" (a name or a list of names, innermost first, as in
// dogpile's wrap=[...]) applies it. f builds the wrapper from the arguments
// given under "wrap_args.<name>" (nil if none). RegisterWrapper panics if
// name is empty, f is nil, or name is already registered.
func RegisterWrapper(name string, f func(args Args) (Wrapper, error)) {
	if name == "" || f == nil {
		panic("backends: RegisterWrapper with an empty name or a nil func")
	}
	wrapMu.Lock()
	defer wrapMu.Unlock()
	if _, dup := wrappers[name]; dup {
		panic("backends: RegisterWrapper called twice for " + name)
	}
	wrappers[name] = f
}

// WrapperNames returns the registered wrapper names, sorted.
func WrapperNames() []string {
	wrapMu.RLock()
	defer wrapMu.RUnlock()
	names := make([]string, 0, len(wrappers))
	for n := range wrappers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LookupWrapper builds the wrapper registered under name. An unknown name is
// an error wrapping ErrBadArgument that lists the known names.
func LookupWrapper(name string, args Args) (Wrapper, error) {
	wrapMu.RLock()
	f := wrappers[name]
	wrapMu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("%w: wrap: unknown wrapper %q (registered: %s)", ErrBadArgument, name, strings.Join(WrapperNames(), ", "))
	}
	return f(args)
}

// Proxy is the base of a proxy backend: embed it, set Next, and override the
// methods the proxy changes. Every optional interface of Next but
// ReadOnlyPayloads passes through a Proxy (a proxy that returns Next's
// payloads unchanged may declare it itself): each is implemented by delegating to Next, and declined at run
// time (ErrUnsupported, a nil Locker, a zero TTL) when Next lacks it. So a proxy over a filesystem backend keeps
// its cross-process lock, and a proxy over a shared store stays shared.
type Proxy struct{ Next Backend }

// Get implements Backend.
func (p Proxy) Get(ctx context.Context, key string) (Entry, error) { return p.Next.Get(ctx, key) }

// Set implements Backend.
func (p Proxy) Set(ctx context.Context, key string, e Entry) error { return p.Next.Set(ctx, key, e) }

// Delete implements Backend.
func (p Proxy) Delete(ctx context.Context, key string) error { return p.Next.Delete(ctx, key) }

// Close implements Backend.
func (p Proxy) Close() error { return p.Next.Close() }

// Discards implements Discarder as Next does.
func (p Proxy) Discards() bool { return Discards(p.Next) }

// ProcessLocal implements ProcessLocal as Next does.
func (p Proxy) ProcessLocal() bool { return !IsShared(p.Next) }

// KeepsValues implements ValueKeeper as Next does.
func (p Proxy) KeepsValues() bool { return KeepsValues(p.Next) }

// Locker implements Locking with Next's lock (nil if it has none).
func (p Proxy) Locker() lock.Locker { return LockerOf(p.Next) }

// StorageTTL implements StorageExpirer with Next's TTL (zero if none).
func (p Proxy) StorageTTL() time.Duration { return StorageTTL(p.Next) }

// GetMulti implements MultiGetter through Next.
func (p Proxy) GetMulti(ctx context.Context, keys []string) ([]*Entry, error) {
	return GetMulti(ctx, p.Next, keys)
}

// SetMulti implements MultiSetter through Next.
func (p Proxy) SetMulti(ctx context.Context, keys []string, entries []Entry) error {
	return SetMulti(ctx, p.Next, keys, entries)
}

// DeleteMulti implements MultiDeleter through Next.
func (p Proxy) DeleteMulti(ctx context.Context, keys []string) error {
	return DeleteMulti(ctx, p.Next, keys)
}

// EvictTag implements TagEvicter through Next, or declines.
func (p Proxy) EvictTag(ctx context.Context, tag string) (int, error) {
	n, err := EvictTag(ctx, p.Next, tag)
	if err != nil {
		return n, fmt.Errorf("proxy: %w", err)
	}
	return n, nil
}

// List implements Lister through Next, or declines.
func (p Proxy) List(ctx context.Context, fn func(EntryInfo) error) error {
	return List(ctx, p.Next, fn)
}

// StorageStats implements StatReporter through Next, or declines.
func (p Proxy) StorageStats(ctx context.Context) (Stats, error) {
	return StorageStatsOf(ctx, p.Next)
}

// OpenFile implements FileStore through Next, or declines.
func (p Proxy) OpenFile(ctx context.Context, key string) (*os.File, Entry, error) {
	if f, ok := p.Next.(FileStore); ok {
		return f.OpenFile(ctx, key)
	}
	return nil, Entry{}, fmt.Errorf("proxy: OpenFile: %w", ErrUnsupported)
}

// StoreFile implements FileStore through Next, or declines.
func (p Proxy) StoreFile(ctx context.Context, key string, f *os.File, e Entry, move bool) error {
	if fs, ok := p.Next.(FileStore); ok {
		return fs.StoreFile(ctx, key, f, e, move)
	}
	return fmt.Errorf("proxy: StoreFile: %w", ErrUnsupported)
}

// StoreFileOpen implements FileStoreOpener through Next, or declines.
func (p Proxy) StoreFileOpen(ctx context.Context, key string, f *os.File, e Entry, move bool) (*os.File, error) {
	if fo, ok := p.Next.(FileStoreOpener); ok {
		return fo.StoreFileOpen(ctx, key, f, e, move)
	}
	return nil, fmt.Errorf("proxy: StoreFileOpen: %w", ErrUnsupported)
}

// SetFenced implements FencedSetter through Next, or declines.
func (p Proxy) SetFenced(ctx context.Context, key string, e Entry, h lock.Handle) error {
	if f, ok := p.Next.(FencedSetter); ok {
		return f.SetFenced(ctx, key, e, h)
	}
	return fmt.Errorf("proxy: SetFenced: %w", ErrUnsupported)
}

// CreateTemp implements TempFiler through Next, or in the system's
// temporary directory.
func (p Proxy) CreateTemp(pattern string) (*os.File, error) {
	if t, ok := p.Next.(TempFiler); ok {
		return t.CreateTemp(pattern)
	}
	return os.CreateTemp("", pattern)
}
