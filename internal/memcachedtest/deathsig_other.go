//go:build !linux

package memcachedtest

import "os/exec"

func setDeathSignal(cmd *exec.Cmd) {}
