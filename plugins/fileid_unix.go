//go:build unix

package plugins

import (
	"io/fs"
	"syscall"
)

// fileID returns the device and inode of a file, which identify it across
// processes, and whether it has a name (a link) another process could open.
func fileID(fi fs.FileInfo) (dev, ino uint64, linked, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false, false
	}
	return uint64(st.Dev), uint64(st.Ino), st.Nlink > 0, true //nolint:unconvert // Dev is 32-bit on some systems
}
