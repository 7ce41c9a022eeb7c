// Package backends is the contract between regioncache regions and the stores
// behind them, in the way database/sql/driver is the contract behind
// database/sql.
//
// Users program against package region; backend authors implement Backend and
// register a Factory under a name with Register, usually from an init
// function. A region reaches a backend only through this package: it never
// imports a concrete backend.
//
// Backend is deliberately small: Get, Set, Delete and Close. Everything else a
// store may be able to do — native multi-key operations, a cross-process lock,
// storage-side expiry, tag eviction, listing, file values — is an optional
// interface discovered with a type assertion, and is reported by the
// Capabilities bit set of a backend that implements Capabler. Callers should go
// through the helper functions (GetMulti, SetMulti, DeleteMulti, LockerOf,
// Has, ...), which check both and fall back where a fallback exists.
//
// Errors are reported with the sentinel errors of this package (ErrNotFound,
// ErrClosed, ErrUnsupported, ErrUnknownBackend, ErrBadArgument), wrapped with
// %w so that errors.Is works through any amount of context.
package backends
