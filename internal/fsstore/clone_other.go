//go:build !linux

package fsstore

import "os"

// cloneFile reports false: reflinks are only tried on Linux; the copy falls
// back to io.Copy.
func cloneFile(dst, src *os.File) bool { return false }
