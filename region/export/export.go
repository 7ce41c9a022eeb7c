// Package export copies a cached file value to a path the caller names,
// atomically (oteapi datacache's getfile): the file is written beside the
// destination under a temporary name, synced, and renamed over it, so a
// reader of the destination sees the previous file or the complete new
// one, never a partial one. The copy is a reflink clone where the
// filesystem offers it (Linux FICLONE: btrfs, XFS, ...), else
// copy_file_range through io.Copy, else a plain copy; memory use does not
// depend on the file's size.
//
// A process killed during an export leaves the destination as it was and
// may leave its temporary file (".<name>.export-*" in the destination's
// directory) behind.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/regioncache/regioncache/internal/reflink"
	"github.com/regioncache/regioncache/region"
)

// Option adjusts File and GetOrCreateFile.
type Option func(*options)

type options struct {
	mode   fs.FileMode
	noSync bool
	call   []region.CallOption
}

// Mode sets the destination's permission bits (default 0644).
func Mode(m fs.FileMode) Option { return func(o *options) { o.mode = m.Perm() } }

// NoSync skips syncing the file and its directory before and after the
// rename: the export is still atomic for readers, but a machine crash may
// leave an empty or partial destination.
func NoSync() Option { return func(o *options) { o.noSync = true } }

// WithCallOptions passes region call options to GetOrCreateFile's region
// call.
func WithCallOptions(opts ...region.CallOption) Option {
	return func(o *options) { o.call = append(o.call, opts...) }
}

// chunk is how much is copied between checks of the context.
const chunk = 64 << 20

// File copies the contents of src, from offset 0, to the path dst
// atomically (see the package doc), replacing any file there. src's offset
// may change. dst's directory must exist; dst must not be a
// directory. A cancelled ctx stops the copy and leaves dst as it was.
func File(ctx context.Context, src *os.File, dst string, opts ...Option) (err error) {
	if src == nil {
		return errors.New("export: File: src is nil")
	}
	if dst == "" {
		return errors.New("export: File: dst is empty; want a file path")
	}
	o := options{mode: 0o644}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return fmt.Errorf("export: dst %q is a directory; want a file path", dst)
	}
	sfi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !sfi.Mode().IsRegular() {
		return fmt.Errorf("export: src %s is not a regular file", src.Name())
	}
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".export-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !reflink.Clone(tmp, src) {
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			// io.CopyN from an *os.File to an *os.File uses
			// copy_file_range where the system has it.
			n, err := io.CopyN(tmp, src, chunk)
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("export: copy to %s: %w", dst, err)
			}
			if n < chunk {
				break
			}
		}
	}
	if err := tmp.Chmod(o.mode); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !o.noSync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("export: sync: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !o.noSync {
		syncDir(dir)
	}
	return nil
}

// GetOrCreateFile is region.GetOrCreateFile followed by File: the file
// value under key, from the cache or created, is exported to dst.
func GetOrCreateFile(ctx context.Context, r *region.Region, key, dst string, create func(context.Context) (*os.File, error), opts ...Option) error {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	f, err := region.GetOrCreateFile(ctx, r, key, create, o.call...)
	if err != nil {
		return err
	}
	defer f.Close()
	return File(ctx, f, dst, opts...)
}
