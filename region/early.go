package region

// engineCfg is the call configuration of the engine's entry points
// (GetOrCreate, GetOrCreateMulti, GetOrCreateFile): callCfg without what
// only reads honour (IgnoreExpiration).
func (s *state) engineCfg(opts []CallOption) callConfig {
	c := s.callCfg(opts)
	c.ignoreExpiration = false
	return c
}
