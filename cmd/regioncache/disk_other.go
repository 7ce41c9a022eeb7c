//go:build !unix

package main

import "os"

// allocated returns the bytes a file occupies on disk; where the system does
// not say, its size.
func allocated(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
