//go:build !linux

package servertest

import "os/exec"

// setDeathSignal does nothing where the kernel offers no parent-death signal;
// the server is still stopped by the test's cleanup.
func setDeathSignal(cmd *exec.Cmd) {}
