package null

// ProcessLocal implements backends.ProcessLocal: nothing is stored, so
// nothing is shared.
func (b *Backend) ProcessLocal() bool { return true }
