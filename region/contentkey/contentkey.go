// Package contentkey stores values under keys derived from their content
// (oteapi datacache's add(value) without a key): the key is the SHA-256 of
// the bytes, so the same content gets the same key in every process and on
// every machine, and storing it twice writes it once.
//
// Keys have the form "sha256:" followed by 64 lower-case hex digits. For
// []byte and string values, and for file contents, the digest is of the
// bytes themselves, so a file's key is its sha256sum. For other values it
// is of the Go type's name, a NUL byte and the value's encoding with a
// deterministic codec (JSON by default: encoding/json writes map keys in
// sorted order, where gob's map order varies from run to run), so that two
// types that encode alike do not share a key.
package contentkey

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"reflect"
	"slices"

	"github.com/regioncache/regioncache/region"
)

// Prefix starts every key this package makes.
const Prefix = "sha256:"

func keyOf(h hash.Hash) string { return Prefix + hex.EncodeToString(h.Sum(nil)) }

// Bytes returns the content key of b.
func Bytes(b []byte) string {
	h := sha256.New()
	h.Write(b)
	return keyOf(h)
}

// Reader returns the content key of everything read from r.
func Reader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("contentkey: %w", err)
	}
	return keyOf(h), nil
}

// Option adjusts Of, Put and PutFile.
type Option func(*options)

type options struct {
	codec region.Codec
	call  []region.CallOption
}

// KeyCodec sets the codec whose encoding of a value (other than []byte and
// string) is hashed (default region.JSON). It must be deterministic: equal
// values must encode to equal bytes, in every process. The region stores
// the value with its own codec regardless.
func KeyCodec(c region.Codec) Option { return func(o *options) { o.codec = c } }

// WithCallOptions passes region call options (ExpireAfter, WithTags, ...)
// to the region call that stores the value.
func WithCallOptions(opts ...region.CallOption) Option {
	return func(o *options) { o.call = append(o.call, opts...) }
}

func apply(opts []Option) (options, error) {
	o := options{codec: region.JSON}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.codec == nil {
		return o, errors.New("contentkey: KeyCodec: codec is nil")
	}
	return o, nil
}

// Of returns the content key of v (see the package doc).
func Of[T any](v T, opts ...Option) (string, error) {
	o, err := apply(opts)
	if err != nil {
		return "", err
	}
	return of(v, &o)
}

func of[T any](v T, o *options) (string, error) {
	switch x := any(v).(type) {
	case []byte:
		return Bytes(x), nil
	case string:
		return Bytes([]byte(x)), nil
	}
	data, err := o.codec.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("contentkey: encode %T with %s: %w", v, o.codec.Name(), err)
	}
	h := sha256.New()
	h.Write([]byte(typeName[T]()))
	h.Write([]byte{0})
	h.Write(data)
	return keyOf(h), nil
}

// typeName names T stably across processes: its package path and name, or
// its literal form for unnamed types.
func typeName[T any]() string {
	t := reflect.TypeFor[T]()
	if t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

// Put stores v in r under its content key and returns the key. If the key
// is already cached (fresh), nothing is written; concurrent Puts of the
// same content write it once (the region's get-or-create).
func Put[T any](ctx context.Context, r *region.Region, v T, opts ...Option) (string, error) {
	if r == nil {
		return "", errors.New("contentkey: Put: region is nil")
	}
	o, err := apply(opts)
	if err != nil {
		return "", err
	}
	key, err := of(v, &o)
	if err != nil {
		return "", err
	}
	if _, err := region.GetOrCreate(ctx, r, key, func(context.Context) (T, error) { return v, nil }, o.call...); err != nil {
		return "", err
	}
	return key, nil
}

// PutFile stores the bytes read from src as a file value in r (a backend
// that stores files, such as rawfs) under their content key, and returns
// the key. src is copied once, while it is hashed, into a temporary file in
// the cache, which is then moved into place, so the stored bytes are
// exactly the ones hashed even if the source changes meanwhile; if the key
// is already cached the copy is discarded.
func PutFile(ctx context.Context, r *region.Region, src io.Reader, opts ...Option) (string, error) {
	if r == nil {
		return "", errors.New("contentkey: PutFile: region is nil")
	}
	if src == nil {
		return "", errors.New("contentkey: PutFile: src is nil")
	}
	o, err := apply(opts)
	if err != nil {
		return "", err
	}
	tmp, err := r.CreateTemp("contentkey-*")
	if err != nil {
		return "", fmt.Errorf("contentkey: %w", err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("contentkey: %w", err)
	}
	discard := func() {
		if named, err := os.Lstat(tmp.Name()); err == nil && os.SameFile(fi, named) {
			os.Remove(tmp.Name())
		}
		tmp.Close()
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, src}); err != nil {
		discard()
		return "", fmt.Errorf("contentkey: PutFile: %w", err)
	}
	key := keyOf(h)
	f, err := region.GetOrCreateFile(ctx, r, key, func(context.Context) (*os.File, error) {
		return tmp, nil
	}, append(slices.Clone(o.call), region.MoveFile())...)
	discard() // moved, stored, or not needed: the temporary name goes
	if err != nil {
		return "", err
	}
	f.Close()
	return key, nil
}

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
