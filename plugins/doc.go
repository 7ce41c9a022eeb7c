// Package plugins runs regioncache backends as separate executables, so that
// a third party can write a backend in its own repository, build one binary,
// install it, and have every region use it by name.
//
// A plugin is a program whose whole main is
//
//	func main() { plugins.Serve(mybackend.Open) }
//
// built as an executable named regioncache-backend-<name>. It talks to its
// host over github.com/hashicorp/go-plugin with gRPC and mutual TLS (see
// docs/plugins.md for the protocol). Nothing but the go-plugin handshake is
// read from its stdout; what it logs through log/slog (its default logger is
// set up by Serve) arrives in the host's slog.
//
// On the host side, importing this package makes every plugin found on disk
// available to backends.Open (and so to region.Open) under its name: the
// directories of REGIONCACHE_PLUGIN_PATH (a path list) are searched first,
// then the per-user directory DefaultDir. Install copies a binary into a
// plugin directory and pins its SHA-256 in the directory's manifest; a pinned
// binary that changed is refused at launch. Open starts a plugin binary
// directly.
//
// Each opened backend runs in its own plugin process. Its host-side Backend
// implements every optional backends interface and declines at run time, as
// the contract says (backends.ErrUnsupported, a nil Locker, a zero TTL), the
// ones the plugin's backend lacks, so regions see exactly what the plugin
// offers (except keeps-values, which cannot cross a process boundary).
// Payloads larger than ChunkSize are streamed in chunks, and file values
// (backends.FileStore) stream between a file in the plugin and a temporary
// file in the host without ever being held in memory whole. If the plugin
// process dies, calls in flight fail at once with an error naming the plugin
// and wrapping ErrPluginExited, and the next call starts it again.
//
// The host trusts nothing a plugin says: no buffer is sized from a number
// the plugin sent (values grow with the bytes received, within
// WithMaxValueSize; messages are held to 4 MiB), replies of the wrong
// length or with impossible counts are errors wrapping backends.ErrBadResult,
// and every call returns at its context's deadline whatever the plugin does.
//
// With plugins speaking protocol version 2 (negotiated in the handshake;
// version 1 still works), small Get, Set and Delete calls share one
// multiplexed stream per plugin process — with version 3, a Unix socket the
// plugin offers over the authenticated connection, off gRPC (a private
// directory, a one-time token, frames bounded to 4 MiB); the plugin's lock sits behind an
// in-process keyed mutex and fences the store that follows a creation
// (backends.FencedSetter); and file values are handed over by path when
// host and plugin see the same file, so that a GetOrCreateFile miss sends
// the file at most once and never fetches it back (StoreFileOpen).
package plugins
