package memory

// ProcessLocal implements backends.ProcessLocal: a memory backend's entries
// are private to its process.
func (b *Backend) ProcessLocal() bool { return true }
