package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// extremeEntries are entries whose metadata lie at the edges of their
// domains: Created zero, in year 1 and year 9999, around the Unix epoch and
// the int64 nanosecond limits, with odd zones and every nanosecond digit;
// Version at the int limits; tags none, many, duplicated, Unicode, empty.
func extremeEntries() map[string]backends.Entry {
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("tag-%04d", i)
	}
	z := func(name string, off int) *time.Location { return time.FixedZone(name, off) }
	created := map[string]time.Time{
		"zero":          {},
		"year-1":        time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		"year-9999":     time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"before-1678":   time.Date(1600, 6, 15, 12, 0, 0, 123456789, time.UTC),
		"after-2262":    time.Date(2300, 1, 1, 0, 0, 0, 987654321, z("far", 14*3600)),
		"epoch":         time.Unix(0, 0).UTC(),
		"before-epoch":  time.Unix(-1, 999999999),
		"nanos":         time.Date(2024, 2, 29, 23, 59, 59, 1, z("minus", -(9*3600+30*60))),
		"max-unix-nano": time.Unix(0, math.MaxInt64),
		"min-unix-nano": time.Unix(0, math.MinInt64),
	}
	out := map[string]backends.Entry{}
	i := 0
	for name, c := range created {
		i++
		out["created/"+name] = backends.Entry{Payload: []byte(name), Created: c, Version: i}
	}
	versions := map[string]int{"max-int": math.MaxInt, "min-int": math.MinInt, "max-int32+1": math.MaxInt32 + 1,
		"min-int32-1": math.MinInt32 - 1, "max-uint32+1": math.MaxUint32 + 1, "minus-one": -1, "zero": 0}
	for name, v := range versions {
		out["version/"+name] = backends.Entry{Payload: []byte(name), Created: time.Unix(1700000000, 5), Version: v}
	}
	tagSets := map[string][]string{
		"many":       many,
		"duplicated": {"d", "d", "e", "d", ""},
		"unicode":    {"ünïcödé", "日本", "🔖", "e\u0301", "é", "\x00nul", "tab\tand\nnewline", strings.Repeat("long", 256)},
		"empty-tag":  {""},
		"empty-list": {},
	}
	for name, t := range tagSets {
		out["tags/"+name] = backends.Entry{Payload: []byte(name), Created: time.Unix(1700000000, 7), Version: 3, Tags: t}
	}
	out["payload/empty"] = backends.Entry{Payload: []byte{}, Created: time.Unix(1700000000, 9), Version: 4, Tags: []string{"empty"}}
	return out
}

// checkMetadataExtremes stores extremeEntries and reads each back exactly —
// through Get and, when the backend has them, its own GetMulti and List.
func checkMetadataExtremes(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	ents := extremeEntries()
	r := newReadPaths(e, b)
	for k, ent := range ents {
		if err := set(ctx, b, k, ent); err != nil {
			return fmt.Errorf("storing metadata at the edge of its domain: %w", err)
		}
		r.put(k, ent)
	}
	for k, ent := range ents {
		if err := e.expect(ctx, b, k, ent); err != nil {
			return err
		}
	}
	if e.discards() {
		return nil
	}
	// An empty payload is an entry, distinct from a miss, on every path.
	if mg, ok := b.(backends.MultiGetter); ok && e.has(FeatMulti) {
		keys := make([]string, 0, len(ents))
		for k := range ents {
			keys = append(keys, k)
		}
		if err := e.expectMulti(ctx, multiOps{get: mg.GetMulti}, keys, r.want); err != nil {
			return fmt.Errorf("the backend's own %w", err)
		}
	}
	if l, ok := b.(backends.Lister); ok && e.has(FeatList) {
		if err := r.verifyList(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// checkFilesReadOnly: the file OpenFile returns is read-only. Writing to it
// fails (or, if the platform lets a write through, never reaches the stored
// value), and the stored value stays what it was.
func checkFilesReadOnly(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	fs, ok := b.(backends.FileStore)
	if !ok {
		return errors.New("backend declares files but does not implement backends.FileStore")
	}
	content := pattern(77, 10000)
	ent := newEntry(nil, 1, "ro")
	src, err := os.CreateTemp(e.scratch, "suite-*")
	if err != nil {
		return err
	}
	defer os.Remove(src.Name())
	defer src.Close()
	if _, err := src.Write(content); err != nil {
		return err
	}
	if err := fs.StoreFile(ctx, "ro", src, ent, false); err != nil {
		return fmt.Errorf("StoreFile: %w", err)
	}
	if e.discards() {
		return e.expectFile(ctx, fs, "ro", content, ent)
	}
	f, _, err := fs.OpenFile(ctx, "ro")
	if err != nil {
		return fmt.Errorf("OpenFile: %w", err)
	}
	if f == nil {
		return errors.New("OpenFile returned a nil file and no error")
	}
	_, werr := f.WriteAt([]byte("OVERWRITTEN THROUGH OPENFILE"), 0)
	_, aerr := f.Write([]byte("appended"))
	terr := f.Truncate(1)
	f.Close()
	if werr == nil || aerr == nil || terr == nil {
		return fmt.Errorf("the file from OpenFile is writable (write: %v, append: %v, truncate: %v): open it read-only, or a caller can change the cached value", werr, aerr, terr)
	}
	if err := e.expectFile(ctx, fs, "ro", content, ent); err != nil {
		return fmt.Errorf("after writing to a file from OpenFile: %w", err)
	}
	return nil
}

// checkFilesTemp: a TempFiler's CreateTemp makes its file inside the
// backend's own storage (the directory it was opened on), so that
// StoreFile(move=true) of it is a rename, never a copy across filesystems.
func checkFilesTemp(ctx context.Context, e *env) error {
	b, err := e.open(ctx)
	if err != nil {
		return err
	}
	tf, ok := b.(backends.TempFiler)
	if !ok {
		return skipf("backend is not a backends.TempFiler: it has no CreateTemp")
	}
	// Where temporary files go matters only for a backend that keeps its
	// values as files in its directory: store one and look.
	fs, ok := b.(backends.FileStore)
	if !ok {
		return errors.New("backend declares files but does not implement backends.FileStore")
	}
	src, err := os.CreateTemp(e.scratch, "suite-*")
	if err != nil {
		return err
	}
	_, werr := src.WriteString("a value kept as a file")
	if werr == nil {
		werr = fs.StoreFile(ctx, "temp-probe", src, newEntry(nil, 1), false)
	}
	src.Close()
	os.Remove(src.Name())
	if werr != nil {
		return fmt.Errorf("StoreFile: %w", werr)
	}
	if ents, err := os.ReadDir(e.dir); err != nil || len(ents) == 0 {
		return skipf("the backend keeps nothing in the directory it was opened on, so its temporary files may be anywhere")
	}
	f, err := tf.CreateTemp("suite-temp-*")
	if err != nil {
		if errors.Is(err, backends.ErrUnsupported) {
			return skipf("CreateTemp declines (ErrUnsupported)")
		}
		return fmt.Errorf("CreateTemp: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	if _, err := f.WriteString("temp"); err != nil {
		f.Close()
		return fmt.Errorf("writing to the file from CreateTemp: %w", err)
	}
	f.Close()
	abs, err := filepath.Abs(name)
	if err != nil {
		return err
	}
	dir, _ := filepath.EvalSymlinks(e.dir)
	real, _ := filepath.EvalSymlinks(abs)
	rel, err := filepath.Rel(dir, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("CreateTemp made %s, outside the backend's storage %s: create it there, so that moving it into the cache is a rename on one filesystem", name, e.dir)
	}
	return nil
}
