//go:build !unix

package export

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) {}
