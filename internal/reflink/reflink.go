// Package reflink clones one file's contents into another by sharing their
// extents (a reflink, Linux FICLONE), for the copies of the file backends
// (internal/fsstore) and of region/export. It imports only the standard
// library and golang.org/x/sys.
package reflink
