package plugins

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/regioncache/regioncache/conformance/brokentest"
)

// binDir holds the plugin binaries the tests launch, built once by TestMain
// from ./internal/testplugin and copied under each backend's name.
var binDir string

// testPlugins are the names the test plugin binary is installed under.
var testPlugins = []string{"memory", "filesystem", "rawfs", "redis", "memcached", "broken", "v99", "locks"}

// hostilePlugins are the names the hostile plugin binary is installed under.
var hostilePlugins = []string{"hostile", "hostile-garbage", "hostile-v1", "hostile-v2", "hostile-badoffer", "hostile-slowoffer"}

// pluginPath returns the path of the test plugin serving backend name.
func pluginPath(name string) string { return filepath.Join(binDir, exe(Prefix+name)) }

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "regioncache-plugins-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	built := filepath.Join(dir, exe("testplugin"))
	cmd := exec.Command("go", "build", "-o", built, "./internal/testplugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugin:", err)
		return 1
	}
	hostile := filepath.Join(dir, exe("hostile"))
	cmd = exec.Command("go", "build", "-o", hostile, "./internal/hostile")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the hostile plugin:", err)
		return 1
	}
	for _, n := range hostilePlugins {
		if err := copyFile(hostile, pluginPath(n)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	cmd = exec.Command("go", "build", "-o", pluginPath("bolt"), "../examples/plugins/boltbackend")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the bolt example plugin:", err)
		return 1
	}
	names := testPlugins
	for _, f := range append(brokentest.Faults(), brokentest.Correct()...) {
		names = append(names, "fault-"+f.Name)
	}
	for _, n := range names {
		if err := copyFile(built, pluginPath(n)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	Cleanup()
	return code
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
