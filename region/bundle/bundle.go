// Package bundle stores several named files as one cache entry (epymorph's
// save_bundle / load_bundle): the members are written, checksummed and
// versioned together, and a reader gets all of them or a miss, never a
// partial or unverified bundle.
//
// GetOrCreate is the region's get-or-create for bundles: it runs on
// region.GetOrCreateFile (one creator per key across goroutines, processes
// and machines, with every region.CallOption meaning what it means there),
// so a bundle of large files is streamed to disk by the creator and renamed
// into the cache, never held in memory. On backends without files (the
// filesystem and memory backends) a bundle is stored as one []byte value;
// that is for small bundles, bounded by MaxInMemory.
//
// # Format
//
// A bundle is a POSIX tar archive (inspect it with tar -tvf): each member is
// a regular file, in the order it was added, followed by a last entry named
// ".regioncache-bundle.json" holding the manifest:
//
//	{"format":1,"version":3,"members":[{"name":"a.csv","size":12,"sha256":"…"}]}
//
// A bundle is served only when every member of the archive is listed in the
// manifest with its size and SHA-256, every listed member is in the archive,
// every checksum matches, no name repeats, the manifest is the last entry,
// and the version is at least the minimum asked for. Anything else — a
// changed member, an extra member, a member without a checksum entry, a
// truncated archive, a lower version — is a miss: the entry is deleted and
// the creator runs under the region's lock. Opening a bundle reads it once
// to check the checksums (SHA-256 streams at about a gigabyte a second),
// so a bundle is verified on every GetOrCreate, hit or not.
package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/region"
)

// ManifestName is the name of the archive entry holding a bundle's manifest.
// No member may have this name.
const ManifestName = ".regioncache-bundle.json"

// maxManifest bounds the manifest a reader will decode.
const maxManifest = 64 << 20

// Errors. A damaged or outdated bundle found in the cache is not an error
// for GetOrCreate (it is a miss and is regenerated); these are what a
// bundle that fails its checks right after being created is reported with,
// and what Open returns for a name that is not a member.
var (
	// ErrDamaged: the archive does not match its manifest (a changed,
	// extra, unlisted or missing member, a truncated archive, a bad
	// manifest).
	ErrDamaged = errors.New("bundle: damaged")
	// ErrOutdated: the bundle's version is below the minimum asked for.
	ErrOutdated = errors.New("bundle: version below the minimum")
	// ErrNoMember: Open was asked for a name the bundle does not hold.
	ErrNoMember = errors.New("bundle: no such member")
)

// Member describes one file of a bundle.
type Member struct {
	Name   string
	Size   int64
	SHA256 string // lower-case hex

	offset int64 // of the data in the archive
}

type manifest struct {
	Format  int              `json:"format"`
	Version int              `json:"version"`
	Members []manifestMember `json:"members"`
}

type manifestMember struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Bundle is an opened, verified bundle. Its members can be read
// concurrently. Close it when done.
type Bundle struct {
	ra      io.ReaderAt
	closer  io.Closer
	version int
	members []Member
	byName  map[string]int
}

// Version returns the version the bundle was written with.
func (b *Bundle) Version() int { return b.version }

// Members returns the bundle's members in the order they were added.
func (b *Bundle) Members() []Member { return slices.Clone(b.members) }

// Names returns the members' names in the order they were added.
func (b *Bundle) Names() []string {
	names := make([]string, len(b.members))
	for i, m := range b.members {
		names[i] = m.Name
	}
	return names
}

// Open returns a reader on the member called name, whose bytes were
// verified against its checksum when the bundle was opened. The reader is
// independent of other readers of the bundle and valid until Close. A name
// that is not a member gives an error wrapping ErrNoMember.
func (b *Bundle) Open(name string) (*io.SectionReader, error) {
	i, ok := b.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (members: %q)", ErrNoMember, name, b.Names())
	}
	m := b.members[i]
	return io.NewSectionReader(b.ra, m.offset, m.Size), nil
}

// ReadFile returns the contents of the member called name.
func (b *Bundle) ReadFile(name string) ([]byte, error) {
	sr, err := b.Open(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sr.Size())
	if _, err := io.ReadFull(sr, buf); err != nil {
		return nil, fmt.Errorf("bundle: read %q: %w", name, err)
	}
	return buf, nil
}

// Close releases the bundle's file.
func (b *Bundle) Close() error {
	if b.closer == nil {
		return nil
	}
	return b.closer.Close()
}

// countingReader counts the bytes read through it, so that the archive
// offset of each member's data is known.
type countingReader struct {
	r *io.SectionReader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Seek lets the tar reader skip members' data without reading it.
func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	n, err := c.r.Seek(offset, whence)
	if err == nil {
		c.n = n
	}
	return n, err
}

// parse reads and verifies the archive in ra (size bytes), which must hold
// a bundle of version at least minVersion. With hash false the members'
// checksums are taken from the manifest rather than computed (for a bundle
// this call has just written).
func parse(ctx context.Context, ra io.ReaderAt, size int64, minVersion int, hash bool) (*Bundle, error) {
	cr := &countingReader{r: io.NewSectionReader(ra, 0, size)}
	tr := tar.NewReader(cr)
	b := &Bundle{ra: ra, byName: map[string]int{}}
	var man *manifest
	buf := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: archive: %v", ErrDamaged, err)
		}
		if man != nil {
			return nil, fmt.Errorf("%w: entry %q after the manifest", ErrDamaged, h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: entry %q is not a regular file (type %q)", ErrDamaged, h.Name, h.Typeflag)
		}
		if h.Name == ManifestName {
			if h.Size > maxManifest {
				return nil, fmt.Errorf("%w: manifest of %d bytes", ErrDamaged, h.Size)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", ErrDamaged, err)
			}
			man = new(manifest)
			if err := json.Unmarshal(data, man); err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", ErrDamaged, err)
			}
			continue
		}
		if _, dup := b.byName[h.Name]; dup {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrDamaged, h.Name)
		}
		m := Member{Name: h.Name, Size: h.Size, offset: cr.n}
		if m.offset+m.Size > size {
			return nil, fmt.Errorf("%w: member %q: %d bytes at offset %d in an archive of %d", ErrDamaged, h.Name, m.Size, m.offset, size)
		}
		if hash {
			sum := sha256.New()
			n, err := io.CopyBuffer(sum, tr, buf)
			if err != nil || n != h.Size {
				return nil, fmt.Errorf("%w: member %q: read %d of %d bytes: %v", ErrDamaged, h.Name, n, h.Size, err)
			}
			m.SHA256 = hex.EncodeToString(sum.Sum(nil))
		}
		b.byName[m.Name] = len(b.members)
		b.members = append(b.members, m)
	}
	if man == nil {
		return nil, fmt.Errorf("%w: no manifest", ErrDamaged)
	}
	if man.Format != 1 {
		return nil, fmt.Errorf("%w: manifest format %d, want 1", ErrDamaged, man.Format)
	}
	listed := make(map[string]bool, len(man.Members))
	for _, mm := range man.Members {
		if listed[mm.Name] {
			return nil, fmt.Errorf("%w: manifest lists %q twice", ErrDamaged, mm.Name)
		}
		listed[mm.Name] = true
		i, ok := b.byName[mm.Name]
		if !ok {
			return nil, fmt.Errorf("%w: manifest lists %q, which the archive does not hold", ErrDamaged, mm.Name)
		}
		if mm.SHA256 == "" {
			return nil, fmt.Errorf("%w: member %q has no checksum", ErrDamaged, mm.Name)
		}
		m := &b.members[i]
		if !hash {
			m.SHA256 = mm.SHA256
		}
		if mm.Size != m.Size || mm.SHA256 != m.SHA256 {
			return nil, fmt.Errorf("%w: member %q does not match its checksum (%d bytes, sha256 %s; manifest: %d bytes, sha256 %s)",
				ErrDamaged, mm.Name, m.Size, m.SHA256, mm.Size, mm.SHA256)
		}
	}
	for _, m := range b.members {
		if !listed[m.Name] {
			return nil, fmt.Errorf("%w: member %q is not in the manifest", ErrDamaged, m.Name)
		}
	}
	if man.Version < minVersion {
		return nil, fmt.Errorf("%w: version %d, want at least %d", ErrOutdated, man.Version, minVersion)
	}
	b.version = man.Version
	return b, nil
}

// Writer adds members to a bundle being created. It is handed to the
// creator of GetOrCreate and is not safe for concurrent use.
type Writer struct {
	ctx     context.Context
	tw      *tar.Writer
	man     manifest
	names   map[string]bool
	failed  error
	written int64
}

func newWriter(ctx context.Context, w io.Writer, version int) *Writer {
	return &Writer{ctx: ctx, tw: tar.NewWriter(w), man: manifest{Format: 1, Version: version, Members: []manifestMember{}}, names: map[string]bool{}}
}

// checkName reports whether name may be a member's name.
func checkName(name string) error {
	if !fs.ValidPath(name) || name == "." || name == ManifestName {
		return fmt.Errorf("bundle: member name %q: want a slash-separated relative path without empty, . or .. elements (io/fs.ValidPath), other than %q", name, ManifestName)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so that a long copy stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Add adds a member called name with exactly size bytes read from r. The
// name is a slash-separated relative path (io/fs.ValidPath), unique in the
// bundle. It is an error if r ends before size bytes; bytes beyond size are
// not read.
func (w *Writer) Add(name string, size int64, r io.Reader) error {
	if w.failed != nil {
		return w.failed
	}
	if err := checkName(name); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("bundle: Add %q: size must be >= 0, got %d", name, size)
	}
	if w.names[name] {
		return fmt.Errorf("bundle: Add %q: a member of that name was already added", name)
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return w.fail(fmt.Errorf("bundle: Add %q: %w", name, err))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w.tw, h), io.LimitReader(ctxReader{w.ctx, r}, size))
	if err != nil {
		return w.fail(fmt.Errorf("bundle: Add %q: %w", name, err))
	}
	if n != size {
		return w.fail(fmt.Errorf("bundle: Add %q: the reader gave %d bytes, want %d", name, n, size))
	}
	w.names[name] = true
	w.written += size
	w.man.Members = append(w.man.Members, manifestMember{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// fail records an error that leaves the archive unusable: later calls
// return it.
func (w *Writer) fail(err error) error {
	w.failed = err
	return err
}

// AddBytes adds a member called name holding b.
func (w *Writer) AddBytes(name string, b []byte) error {
	return w.Add(name, int64(len(b)), bytes.NewReader(b))
}

// AddFile adds a member called name holding the contents of the file at
// path, streamed.
func (w *Writer) AddFile(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bundle: AddFile %q: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bundle: AddFile %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("bundle: AddFile %q: %s is not a regular file", name, path)
	}
	return w.Add(name, fi.Size(), f)
}

// finish writes the manifest and closes the archive.
func (w *Writer) finish() error {
	if w.failed != nil {
		return w.failed
	}
	data, err := json.Marshal(&w.man)
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: ManifestName, Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := w.tw.Write(data); err != nil {
		return err
	}
	return w.tw.Close()
}

// Option adjusts GetOrCreate.
type Option func(*options)

type options struct {
	minVersion  int
	minSet      bool
	call        []region.CallOption
	maxInMemory int64
}

// MinVersion makes bundles written with a version below v misses
// (epymorph's version_at_least). The default is the version GetOrCreate
// writes; v may be lower, to accept older bundles, but not higher.
func MinVersion(v int) Option {
	return func(o *options) { o.minVersion, o.minSet = v, true }
}

// WithCallOptions passes region call options (ExpireAfter, WithTags,
// WaitForFresh, RegenerateInBackground, ...) to the region's get-or-create.
func WithCallOptions(opts ...region.CallOption) Option {
	return func(o *options) { o.call = append(o.call, opts...) }
}

// DefaultMaxInMemory is the default of MaxInMemory.
const DefaultMaxInMemory = 64 << 20

// MaxInMemory bounds the size of a bundle on a backend without files (such
// as filesystem or memory), where the whole bundle is one []byte value read
// into memory (default DefaultMaxInMemory). A larger bundle fails its
// creation with an error; use rawfs for large bundles.
func MaxInMemory(n int64) Option {
	return func(o *options) { o.maxInMemory = n }
}

// maxAttempts bounds the deletions of damaged entries one call makes before
// giving up (another process may keep writing damaged bundles).
const maxAttempts = 4

// GetOrCreate returns the bundle stored under key, or runs create to write
// it when it is missing, expired, damaged or of a version below the minimum
// (see MinVersion), with the region's dogpile locking: one creator per key,
// whatever the number of callers and processes. create adds the members
// through w; the bundle is stored with version version. A creator's error
// is returned and nothing is stored. The caller closes the bundle.
//
// On backends that store files (rawfs) the bundle is written by the creator
// to a temporary file in the cache and moved into it; other backends store
// it as one value, up to MaxInMemory bytes.
func GetOrCreate(ctx context.Context, r *region.Region, key string, version int, create func(ctx context.Context, w *Writer) error, opts ...Option) (*Bundle, error) {
	if r == nil {
		return nil, errors.New("bundle: GetOrCreate: region is nil")
	}
	if create == nil {
		return nil, errors.New("bundle: GetOrCreate: create is nil")
	}
	o := options{maxInMemory: DefaultMaxInMemory}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if !o.minSet {
		o.minVersion = version
	}
	if o.minVersion > version {
		return nil, fmt.Errorf("bundle: GetOrCreate: MinVersion(%d) is above the version written (%d): every bundle created would be a miss", o.minVersion, version)
	}
	if o.maxInMemory <= 0 {
		return nil, fmt.Errorf("bundle: GetOrCreate: MaxInMemory must be > 0, got %d", o.maxInMemory)
	}
	for attempt := 1; ; attempt++ {
		b, ran, err := getOrCreateFile(ctx, r, key, version, create, &o)
		if errors.Is(err, backends.ErrUnsupported) && !ran {
			b, err = getOrCreateBytes(ctx, r, key, version, create, &o)
		}
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrOutdated) {
			return nil, err
		}
		if attempt == maxAttempts {
			return nil, fmt.Errorf("bundle %q: %w", key, err)
		}
		// A damaged or outdated bundle is a miss: remove it and ask
		// again, so that one caller recreates it under the key's lock.
		if err := r.Delete(ctx, key); err != nil {
			return nil, fmt.Errorf("bundle %q: removing a damaged bundle: %w", key, err)
		}
	}
}

// getOrCreateFile is GetOrCreate on a backend that stores files. It
// reports whether its creator ran (which can be in the background).
func getOrCreateFile(ctx context.Context, r *region.Region, key string, version int, create func(context.Context, *Writer) error, o *options) (*Bundle, bool, error) {
	var (
		mu      sync.Mutex // the creator may run in the background
		created bool
		tmpName string
		wrote   os.FileInfo // the finished file the creator returned
	)
	f, err := region.GetOrCreateFile(ctx, r, key, func(ctx context.Context) (*os.File, error) {
		mu.Lock()
		created = true
		mu.Unlock()
		tmp, err := r.CreateTemp("bundle-*")
		if err != nil {
			return nil, fmt.Errorf("bundle %q: %w", key, err)
		}
		if err := build(ctx, tmp, version, create); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, err
		}
		fi, err := tmp.Stat()
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, fmt.Errorf("bundle %q: %w", key, err)
		}
		mu.Lock()
		tmpName, wrote = tmp.Name(), fi
		mu.Unlock()
		return tmp, nil
	}, append(slices.Clone(o.call), region.MoveFile())...)
	mu.Lock()
	ran, name, ours := created, tmpName, wrote
	mu.Unlock()
	if err != nil {
		return nil, ran, err
	}
	if name != "" && f.Name() == name {
		// Not stored (a write error, CacheIf, a disabled region): the
		// creator's own temporary file was handed back; its name is ours
		// to remove while the handle keeps the bytes.
		os.Remove(name)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ran, fmt.Errorf("bundle %q: %w", key, err)
	}
	// The file this call's creator wrote and the region moved into the
	// cache needs no second hashing; anything else (a hit, a stale file
	// served during a background regeneration, a copy) is verified.
	b, err := parse(ctx, f, fi.Size(), o.minVersion, ours == nil || !os.SameFile(ours, fi))
	if err != nil {
		f.Close()
		return nil, ran, err
	}
	b.closer = f
	return b, ran, nil
}

// build runs create on a Writer into f and finishes the archive.
func build(ctx context.Context, f *os.File, version int, create func(context.Context, *Writer) error) error {
	w := newWriter(ctx, f, version)
	if err := create(ctx, w); err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// getOrCreateBytes is GetOrCreate on a backend without files: the bundle is
// one []byte value.
func getOrCreateBytes(ctx context.Context, r *region.Region, key string, version int, create func(context.Context, *Writer) error, o *options) (*Bundle, error) {
	data, err := region.GetOrCreate(ctx, r, key, func(ctx context.Context) ([]byte, error) {
		var buf limitedBuffer
		buf.max = o.maxInMemory
		if err := buildTo(ctx, &buf, version, create); err != nil {
			return nil, err
		}
		return buf.b.Bytes(), nil
	}, o.call...)
	if err != nil {
		return nil, err
	}
	return parse(ctx, bytes.NewReader(data), int64(len(data)), o.minVersion, true)
}

func buildTo(ctx context.Context, w io.Writer, version int, create func(context.Context, *Writer) error) error {
	bw := newWriter(ctx, w, version)
	if err := create(ctx, bw); err != nil {
		return err
	}
	if err := bw.finish(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// limitedBuffer is a bytes.Buffer that refuses to grow past max.
type limitedBuffer struct {
	b   bytes.Buffer
	max int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if int64(l.b.Len())+int64(len(p)) > l.max {
		return 0, fmt.Errorf("bundle: over %d bytes (MaxInMemory) on a backend that stores no files; use rawfs for large bundles", l.max)
	}
	return l.b.Write(p)
}
