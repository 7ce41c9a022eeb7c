package export

import (
	"os"

	"golang.org/x/sys/unix"
)

// reflink clones src's contents into dst (both whole files) if the
// filesystem can share their extents, and reports whether it did.
func reflink(dst, src *os.File) bool {
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
	if err != nil || cloneErr != nil {
		return false
	}
	// A clone leaves dst's offset at 0; later writes are none.
	return true
}
