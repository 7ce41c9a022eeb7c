//go:build unix

package main

import (
	"os"
	"syscall"
)

// allocated returns the bytes a file occupies on disk (its allocated
// blocks), or 0 when path is empty or cannot be examined.
func allocated(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
