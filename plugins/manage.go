package plugins

import (
	"crypto/sha256"
	"hash"
	"io"
	"os"
	"sync"
)

// live is the registry of running plugin processes, for Cleanup.
var (
	liveMu sync.Mutex
	live   = make(map[*proc]struct{})
)

func track(p *proc) {
	liveMu.Lock()
	live[p] = struct{}{}
	liveMu.Unlock()
}

func untrack(p *proc) {
	liveMu.Lock()
	delete(live, p)
	liveMu.Unlock()
}

// Cleanup stops every plugin process this host started that is still
// running, like go-plugin's CleanupClients. Backends whose process it
// stopped start it again on their next call. A host that may exit without
// closing its backends should defer Cleanup in main; a plugin whose host
// exits without it (or is killed) exits by itself on Unix-like systems.
func Cleanup() {
	liveMu.Lock()
	ps := make([]*proc, 0, len(live))
	for p := range live {
		ps = append(ps, p)
	}
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.kill()
		}()
	}
	wg.Wait()
}

func newHash() hash.Hash { return sha256.New() }

// fileSHA256 returns the SHA-256 of the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
