package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regioncache/regioncache/internal/fsstore"
)

// openCacheDir opens an existing filesystem or rawfs cache directory for the
// inspect, prune, evict and rm commands. It refuses directories that are not
// caches, so that a typo cannot turn an arbitrary directory into one. Nothing
// below dir is followed (fsstore confines every operation to it); damage it
// works around is reported on stderr.
func openCacheDir(dir string) (*fsstore.Store, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if !fsstore.IsCacheDir(dir) {
		return nil, fmt.Errorf("%s is not a regioncache filesystem or rawfs cache directory (no %s)", dir, fsstore.LockFile)
	}
	return fsstore.Open(fsstore.Options{
		Dir:  dir,
		Kind: fsstore.DetectKind(dir),
		// One damaged shard or planted file is reported and skipped; the
		// command goes on with the rest of the directory.
		OnProblem: func(path string, err error) {
			fmt.Fprintf(os.Stderr, "regioncache: warning: skipped %s: %v\n", path, err)
		},
	})
}

func kindName(k byte) string {
	if k == fsstore.KindFile {
		return "rawfs"
	}
	return "filesystem"
}

// humanBytes formats n in 1024-based units: "512 B", "1.5 KiB", "3.0 GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// humanAge formats a duration compactly: "45s", "3m12s", "5h03m", "12d04h".
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// printableKey shows a key as it is when it is printable (and does not itself
// start with a quote), quoted otherwise.
func printableKey(k string) string {
	if utf8.ValidString(k) && !strings.ContainsFunc(k, func(r rune) bool { return r < ' ' || r == 0x7f }) && k != "" && k[0] != '"' {
		if len(k) > 120 {
			return k[:117] + "..."
		}
		return k
	}
	q := strconv.Quote(k)
	if len(q) > 120 {
		q = q[:117] + "..."
	}
	return q
}
