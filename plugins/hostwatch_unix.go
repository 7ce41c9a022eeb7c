//go:build unix

package plugins

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// hostFDEnv tells a plugin which file descriptor is the read end of a pipe
// whose write end only its host holds. The host never writes to it; when the
// host exits or dies the kernel closes the write end, the plugin's read
// returns, and the plugin exits. go-plugin alone would leave the plugin
// running after its host was killed.
const hostFDEnv = hostFDEnvName

// attachHostPipe gives cmd the read end of a host-liveness pipe and returns
// the write end, which the host keeps open for the life of the plugin.
func attachHostPipe(cmd *exec.Cmd) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	fd := 2 + len(cmd.ExtraFiles)
	cmd.Env = append(cmd.Env, hostFDEnv+"="+strconv.Itoa(fd))
	// The child gets its own copy at Start; ours is closed by afterStart.
	return w, nil
}

// afterStart closes the host's copy of the pipe's read end.
func afterStart(cmd *exec.Cmd) {
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
}

// watchHost, in a plugin, exits the process when the host goes away.
func watchHost() {
	s := os.Getenv(hostFDEnv)
	if s == "" {
		return
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "regioncache-host")
	if f == nil {
		return
	}
	go func() {
		_, _ = io.Copy(io.Discard, f)
		slog.Info("host exited; plugin exiting")
		os.Exit(0)
	}()
}
