//go:build !unix

package plugins

import (
	"os"
	"os/exec"
)

// attachHostPipe is a no-op where child processes cannot inherit extra file
// descriptors (Windows): there a plugin outlives a host that is killed, and
// is stopped by the host's Close or Cleanup on a normal exit.
func attachHostPipe(cmd *exec.Cmd) (*os.File, error) { return nil, nil }

func afterStart(cmd *exec.Cmd) {}

func watchHost() {}
