// Package region is regioncache's portable API: a Region is a named cache in
// front of a backend, and GetOrCreate is its central operation.
//
// When many callers — goroutines, processes, machines — ask a region for the
// same missing or expired value at once, exactly one of them runs the creator;
// the others wait for its result, or are served the previous value while it is
// being regenerated. That is dogpile locking, modelled on Python's
// dogpile.cache, whose behaviour is the default here.
//
// A region is configured with a backend name and arguments:
//
//	r, err := region.Open("memory", nil, region.WithExpiration(time.Minute))
//	user, err := region.GetOrCreate(ctx, r, "user:42", func(ctx context.Context) (User, error) {
//		return db.LoadUser(ctx, 42)
//	})
//
// Backends register themselves by name (import them for their side effect, or
// import backends/all). Values of type []byte and string are stored as they
// are; other types go through the region's Codec (gob by default). A value
// that no longer decodes is a miss and is regenerated.
//
// # Semantics
//
// A fresh value is returned at once. A caller that finds nothing usable
// (absent, hard-invalidated, older than the region's minimum version, of the
// wrong type) waits on the key's lock and re-reads; only if the value is still
// missing does it run the creator. A caller that finds a stale value (expired
// or soft-invalidated) tries the lock without waiting: if it wins, it
// regenerates; if not, it returns the stale value at once. WaitForFresh makes
// callers wait for the fresh value instead; RegenerateInBackground returns the
// stale value immediately and regenerates in a goroutine. EarlyRefresh (or
// WithEarlyRefresh) regenerates a value shortly before it expires: the caller
// it chooses gets the fresh value and regenerates in the background, so a hot
// key is neither waited for nor served stale.
//
// Within one process only one caller per key waits on the key's lock; the
// others wait for its outcome. A creator's error goes to the caller that ran
// it and nothing is cached; callers of the same process that were waiting
// for that creation get an error wrapping ErrCreatorFailed and the creator's
// error instead of running the creator again one after another. A panic in a
// creator releases the lock, gives the waiters an error, and propagates to
// the caller that ran it. GetOrCreate, GetOrCreateMulti and GetOrCreateFile
// are one algorithm: every option means the same in all three. A
// failed write never fails a call whose creator succeeded: the value is
// returned and the failure is logged and counted in Stats.
//
// Expiration is judged at read time against the creation time stored in the
// entry. Invalidate marks every entry created before now as missing (Hard) or
// stale (Soft); the mark is stored through the backend, so every process
// sharing the backend honours it. WithInvalidationStrategy replaces where
// marks live and how entries are judged against them (InvalidationStrategy).
package region
