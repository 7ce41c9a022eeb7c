//go:build !linux

package reflink

import "os"

// Clone reports false: reflinks are only tried on Linux, and the caller
// copies instead.
func Clone(dst, src *os.File) bool { return false }
