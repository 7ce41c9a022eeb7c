package plugins

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

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
	err := b.call(ctx, func(c pb.BackendClient, id uint64) error {
		st, err := c.OpenFile(ctx, &pb.KeyRequest{Instance: id, Key: []byte(key)})
		if err != nil {
			return err
		}
		first, err := st.Recv()
		if err != nil {
			return err
		}
		e = entryOf(first.Meta)
		tmp, err := os.CreateTemp(b.cfg.tempDir, "regioncache-plugin-*")
		if err != nil {
			return fmt.Errorf("plugin %s: temporary file for OpenFile: %w", b.cfg.name, err)
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
			w, err := tmp.Write(frame.Data)
			n += int64(w)
			if err != nil {
				return fmt.Errorf("plugin %s: writing %s: %w", b.cfg.name, name, err)
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
			return fmt.Errorf("%w: plugin streamed %d bytes of a %d-byte file", ErrPluginExited, n, first.Size)
		}
		ro, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", b.cfg.name, err)
		}
		keep, out = true, ro
		return nil
	})
	if err != nil {
		return nil, backends.Entry{}, err
	}
	return out, e, nil
}

// StoreFile implements backends.FileStore (capability files). It streams f
// from offset 0 to the plugin in chunks, without moving f's offset; the
// plugin writes it to a temporary file of its own and hands that to its
// backend's StoreFile. move is accepted but f is never taken: the host's
// file stays where it is.
func (b *Backend) StoreFile(ctx context.Context, key string, f *os.File, e backends.Entry, move bool) error {
	if !b.caps.has(declFiles) {
		return b.unsupported("file values")
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("plugin %s: StoreFile: %w", b.cfg.name, err)
	}
	size := fi.Size()
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
