//go:build linux

package fsstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// cloneFile makes dst a reflink clone of src (FICLONE) where the filesystem
// supports it (btrfs, XFS, bcachefs); it reports whether it did.
func cloneFile(dst, src *os.File) bool {
	sc, err := src.SyscallConn()
	if err != nil {
		return false
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = sc.Control(func(sfd uintptr) {
		_ = dc.Control(func(dfd uintptr) {
			ok = unix.IoctlFileClone(int(dfd), int(sfd)) == nil
		})
	})
	return ok
}
