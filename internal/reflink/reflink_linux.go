//go:build linux

package reflink

import (
	"os"

	"golang.org/x/sys/unix"
)

// Clone makes dst, a whole file, a reflink clone of all of src (FICLONE)
// where the filesystem can share their extents (btrfs, XFS, bcachefs), and
// reports whether it did. On false nothing was cloned and the caller copies
// instead. A clone leaves both files' offsets where they were.
func Clone(dst, src *os.File) bool {
	sc, err := src.SyscallConn()
	if err != nil {
		return false
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return false
	}
	var cloneErr error
	err = sc.Control(func(sfd uintptr) {
		err := dc.Control(func(dfd uintptr) {
			cloneErr = unix.IoctlFileClone(int(dfd), int(sfd))
		})
		if err != nil {
			cloneErr = err
		}
	})
	return err == nil && cloneErr == nil
}
