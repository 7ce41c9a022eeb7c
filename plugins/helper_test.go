package plugins

import (
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
)

// helperEnv makes the test binary act as a plugin host (see helperMain), so
// that a test can kill a host and watch its plugin.
const helperEnv = "REGIONCACHE_PLUGINS_TEST_HELPER"

// helperMain opens the plugin named by $REGIONCACHE_PLUGINS_TEST_PLUGIN,
// prints its pid and then sleeps until killed.
func helperMain() int {
	b, err := Open(os.Getenv("REGIONCACHE_PLUGINS_TEST_PLUGIN"), nil)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(b.pid())
	time.Sleep(time.Hour)
	return 0
}

// pid returns the plugin process's pid (0 if none is running).
func (b *Backend) pid() int {
	b.g.mu.Lock()
	defer b.g.mu.Unlock()
	if b.g.cur == nil {
		return 0
	}
	return b.g.cur.pid
}

// starts reports how many times the plugin process was started.
func (b *Backend) starts() int {
	b.g.mu.Lock()
	defer b.g.mu.Unlock()
	return b.g.starts
}

// withOwnProcess makes Open start a plugin process of the Backend's own
// rather than join one serving the same executable.
func withOwnProcess() Option {
	return func(c *config) {
		c.dialOpts = append(c.dialOpts[:len(c.dialOpts):len(c.dialOpts)], grpc.EmptyDialOption{})
	}
}
