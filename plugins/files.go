package plugins

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// OpenFile implements backends.FileStore (capability files). The value
// streams from the plugin into a temporary file of the host (see
// WithTempDir), chunk by chunk, so the host never holds it in memory. The
// returned file is read-only; on Unix-like systems its name is already
// removed, so closing it frees the space.
func (b *Backend) OpenFile(ctx context.Context, key string) (*os.File, backends.Entry, error) {
	if !b.caps.has(declFiles) {
		return nil, backends.Entry{}, b.unsupported("file values")
	}
	var (
		out *os.File
		e   backends.Entry
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if we stop reading early
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		st, err := c.OpenFile(ctx, &pb.KeyRequest{Instance: id, Key: []byte(key)})
		if err != nil {
			return err
		}
		first, err := st.Recv()
		if err != nil {
			return err
		}
		if first.Size < 0 {
			return fmt.Errorf("%w: OpenFile announced %d bytes", backends.ErrBadResult, first.Size)
		}
		e = entryOf(first.Meta)
		tmp, err := os.CreateTemp(b.cfg.tempDir, "regioncache-plugin-*")
		if err != nil {
			return fmt.Errorf("temporary file for OpenFile: %w", err)
		}
		name := tmp.Name()
		keep := false
		defer func() {
			tmp.Close()
			if !keep || runtime.GOOS != "windows" {
				os.Remove(name)
			}
		}()
		var n int64
		for frame := first; ; {
			if n+int64(len(frame.Data)) > first.Size {
				return fmt.Errorf("%w: the plugin streamed more than the %d bytes it announced for the file", backends.ErrBadResult, first.Size)
			}
			w, err := tmp.Write(frame.Data)
			n += int64(w)
			if err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
			frame, err = st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		if n != first.Size {
			return fmt.Errorf("%w: the plugin streamed %d bytes of a %d-byte file", backends.ErrBadResult, n, first.Size)
		}
		ro, err := os.Open(name)
		if err != nil {
			return err
		}
		keep, out = true, ro
		return nil
	})
	if err != nil {
		return nil, backends.Entry{}, err
	}
	return out, e, nil
}

// StoreFile implements backends.FileStore (capability files). When host and
// plugin see the same filesystem (the plugin finds the host's file at its
// path, with the same device, inode and size; protocol version 2) the file
// is handed over by path: with move, the plugin's backend renames it into
// its store if it permits moves (like a backend in-process would), else it
// copies it; nothing is sent. Otherwise f is streamed from offset 0 to the
// plugin in chunks, without moving f's offset, which writes it to a
// temporary file of its own and hands that to its backend's StoreFile; the
// host's file then stays where it is, move or not.
func (b *Backend) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	if !b.caps.has(declFiles) {
		return b.unsupported("file values")
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("plugin %s: StoreFile: %w", b.cfg.name, err)
	}
	if taken, err := b.storeByPath(ctx, key, f, fi, e, move); err != nil || taken {
		return err
	}
	return b.streamFile(ctx, key, f, fi.Size(), e)
}

// StoreFileOpen stores f as StoreFile does and returns a read-only handle
// on exactly the bytes stored, without reading them back from the plugin:
// with move, a new read-only handle on f's own file (which the caller gives
// up, and which the plugin may have renamed into its store); without, a
// local copy in the temporary directory (see WithTempDir; copy_file_range
// or a reflink where the system has them), whose name is already removed on
// Unix-like systems. The region package's GetOrCreateFile uses it, so a
// miss sends the file to the plugin once and fetches nothing back.
func (b *Backend) StoreFileOpen(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) (*os.File, error) {
	if !b.caps.has(declFiles) {
		return nil, b.unsupported("file values")
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("plugin %s: StoreFile: %w", b.cfg.name, err)
	}
	var out *os.File
	if move {
		// Before the plugin can rename it: the handle follows the file.
		if out, err = reopenReadOnly(f); err != nil {
			return nil, fmt.Errorf("plugin %s: reopening the created file: %w", b.cfg.name, err)
		}
	} else {
		if out, err = b.localCopy(f, fi.Size()); err != nil {
			return nil, err
		}
	}
	taken, err := b.storeByPath(ctx, key, f, fi, e, move)
	if err == nil && !taken {
		err = b.streamFile(ctx, key, f, fi.Size(), e)
	}
	if err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// localCopy copies f's first size bytes into an unnamed read-only file of
// the host.
func (b *Backend) localCopy(f *os.File, size int64) (*os.File, error) {
	tmp, err := os.CreateTemp(b.cfg.tempDir, "regioncache-plugin-*")
	if err != nil {
		return nil, fmt.Errorf("plugin %s: temporary file: %w", b.cfg.name, err)
	}
	name := tmp.Name()
	defer func() {
		tmp.Close()
		if runtime.GOOS != "windows" {
			os.Remove(name)
		}
	}()
	// *os.File.ReadFrom uses copy_file_range for an *os.File source behind
	// an io.LimitedReader.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", b.cfg.name, err)
	}
	n, err := tmp.ReadFrom(&io.LimitedReader{R: f, N: size})
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %s: copying the created file: %w", b.cfg.name, err)
	}
	return os.Open(name)
}

// storeByPath offers the plugin f by path; taken is false when the plugin
// cannot see it (or speaks protocol version 1, or the system has no file
// identities), and then nothing was stored.
func (b *Backend) storeByPath(ctx context.Context, key string, f *os.File, fi os.FileInfo, e backends.Entry, move bool) (taken bool, err error) {
	if b.notShared.Load() {
		return false, nil
	}
	dev, ino, linked, ok := fileID(fi)
	if !ok || !linked || !fi.Mode().IsRegular() {
		return false, nil // an unnamed file is streamed
	}
	path, err := filepath.Abs(f.Name())
	if err != nil {
		return false, nil
	}
	err = b.call(ctx, func(c pb.BackendClient, id uint64) error {
		if p, _, _ := b.conn(); p == nil || p.version < 2 {
			return nil
		}
		r, err := c.StoreFilePath(ctx, &pb.StorePathRequest{Instance: id, Key: []byte(key), Meta: metaOf(&e), Move: move,
			File: &pb.FileRef{Path: path, Dev: dev, Ino: ino, Size: fi.Size()}})
		if err != nil {
			return err
		}
		taken = r.Taken
		if !taken {
			b.notShared.Store(true)
		}
		return nil
	})
	return taken, err
}

// streamFile sends f's first size bytes to the plugin's StoreFile.
func (b *Backend) streamFile(ctx context.Context, key string, f *os.File, size int64, e backends.Entry) error {
	return b.call(ctx, func(c pb.BackendClient, id uint64) error {
		st, err := c.StoreFile(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&pb.FileFrame{Instance: id, Key: []byte(key), Meta: metaOf(&e), Size: size}); err != nil && err != io.EOF {
			return err
		}
		err = sendFile(io.NewSectionReader(f, 0, size), func(p []byte) error {
			return st.Send(&pb.FileFrame{Data: p})
		})
		if err != nil && err != io.EOF {
			return err
		}
		_, err = st.CloseAndRecv()
		return err
	})
}

// CreateTemp implements backends.TempFiler: a temporary file for a creator
// to write a file value into. When the plugin's backend chooses where its
// temporary files go and the host sees the file the plugin created there
// (same device and inode), that file is returned, so that storing it with
// move is a rename in the plugin; otherwise a temporary file of the host
// (see WithTempDir).
func (b *Backend) CreateTemp(pattern string) (*os.File, error) {
	if b.caps.has(declFiles) && !b.notShared.Load() {
		if f := b.pluginTemp(pattern); f != nil {
			return f, nil
		}
	}
	return os.CreateTemp(b.cfg.tempDir, pattern)
}

// pluginTemp asks the plugin for a temporary file and opens it, or gives nil.
func (b *Backend) pluginTemp(pattern string) *os.File {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ref *pb.FileRef
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		if p, _, _ := b.conn(); p == nil || p.version < 2 {
			return nil
		}
		r, err := c.CreateTemp(ctx, &pb.CreateTempRequest{Instance: id, Pattern: pattern})
		ref = r
		return err
	})
	if err != nil || ref == nil {
		return nil
	}
	f, err := os.OpenFile(ref.Path, os.O_RDWR, 0)
	if err != nil {
		b.notShared.Store(true)
		return nil
	}
	ref.Size = 0
	if !sameFile(f, ref) {
		f.Close()
		b.notShared.Store(true)
		return nil
	}
	return f
}

// reopenByName opens f's name read-only and checks it is still f's file.
func reopenByName(f *os.File) (*os.File, error) {
	r, err := os.Open(f.Name())
	if err != nil {
		return nil, err
	}
	a, err1 := f.Stat()
	c, err2 := r.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(a, c) {
		r.Close()
		return nil, fmt.Errorf("%s is no longer the created file", f.Name())
	}
	return r, nil
}

// The optional interfaces the host side has beyond FileStore.
var (
	_ backends.FileStoreOpener = (*Backend)(nil)
	_ backends.TempFiler       = (*Backend)(nil)
	_ backends.FencedSetter    = (*Backend)(nil)
)
