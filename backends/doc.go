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
// interface discovered with a type assertion. Implementing the interface is
// the declaration; an instance that cannot serve it at run time declines
// (ErrUnsupported from its methods, a nil Locker, a zero StorageTTL), the way
// database/sql/driver's ErrSkip does. Only three declarations have no
// operation behind them — ProcessLocal, Discarder and ReadOnlyPayloads — and
// a backend that implements none gets the safe defaults: its storage is
// treated as shared across processes, and the payloads it returns are
// copied before they become strings. Callers should go through the helper functions (GetMulti,
// SetMulti, DeleteMulti, EvictTag, List, StorageStatsOf, LockerOf,
// StorageTTL, IsShared, ...), which handle both forms and fall back where a
// fallback exists. A proxy that embeds Proxy keeps every optional interface
// of the backend it wraps but ReadOnlyPayloads (its Get may return buffers of
// its own).
//
// Errors are reported with the sentinel errors of this package (ErrNotFound,
// ErrClosed, ErrUnsupported, ErrUnknownBackend, ErrBadArgument), wrapped with
// %w so that errors.Is works through any amount of context.
package backends
