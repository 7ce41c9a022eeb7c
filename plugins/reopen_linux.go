package plugins

import (
	"os"
	"strconv"
)

// reopenReadOnly opens f's file again, read-only, through /proc/self/fd:
// the new handle follows the file (inode) even if it is renamed or
// unlinked afterwards, and has its own offset.
func reopenReadOnly(f *os.File) (*os.File, error) {
	r, err := os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(f.Fd()), 10))
	if err != nil {
		return reopenByName(f)
	}
	return r, nil
}
