package fsstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// Config is a backend configuration parsed from dogpile_filesystem-style
// arguments.
type Config struct {
	Options
	DistributedLock bool
	FileMovable     bool
}

// ParseArgs parses base_dir (required), cache_size, expiration_time,
// distributed_lock and sync, plus file_movable when kind is KindFile. Unknown
// arguments are errors.
func ParseArgs(args backends.Args, kind byte) (Config, error) {
	known := []string{"base_dir", "cache_size", "expiration_time", "distributed_lock", "sync"}
	if kind == KindFile {
		known = append(known, "file_movable")
	}
	var c Config
	c.Kind = kind
	if err := args.Only(known...); err != nil {
		return c, err
	}
	var err error
	if c.Dir, err = args.String("base_dir", ""); err != nil {
		return c, err
	}
	if c.Dir == "" {
		return c, fmt.Errorf("%w: base_dir: required (the cache directory)", backends.ErrBadArgument)
	}
	if c.Dir == "~" || strings.HasPrefix(c.Dir, "~/") || strings.HasPrefix(c.Dir, "~"+string(filepath.Separator)) {
		// As a shell would: a config file's "~/cache" is the user's, not a
		// directory named "~".
		home, err := os.UserHomeDir()
		if err != nil {
			return c, fmt.Errorf("%w: base_dir: %q: %v", backends.ErrBadArgument, c.Dir, err)
		}
		c.Dir = filepath.Join(home, c.Dir[1:])
	}
	if c.MaxBytes, err = args.Size("cache_size", 0); err != nil {
		return c, err
	}
	if c.TTL, err = args.Duration("expiration_time", 0); err != nil {
		return c, err
	}
	if c.DistributedLock, err = args.Bool("distributed_lock", true); err != nil {
		return c, err
	}
	if c.Sync, err = args.Bool("sync", false); err != nil {
		return c, err
	}
	if kind == KindFile {
		if c.FileMovable, err = args.Bool("file_movable", true); err != nil {
			return c, err
		}
	}
	return c, nil
}

// IsCacheDir reports whether dir looks like a cache directory made by this
// package (it has the lock file).
func IsCacheDir(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, LockFile))
	return err == nil && fi.Mode().IsRegular()
}

// DetectKind reports the kind of the entries in dir (KindValue or KindFile)
// from the first entry file it finds; KindValue if there is none. It never
// follows a link below dir: shards and entries that are links, FIFOs, hard
// links or anything but a regular file are skipped.
func DetectKind(dir string) byte {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // dir itself is the user's choice
	}
	base, err := openDir(dir)
	if err != nil {
		return KindValue
	}
	defer base.close()
	for i := range 256 {
		sh, _, err := base.openSub(fmt.Sprintf("%02x", i), false)
		if err != nil {
			continue
		}
		k := kindIn(sh)
		sh.close()
		if k != 0 {
			return k
		}
	}
	return KindValue
}

func kindIn(sh *dirHandle) byte {
	names, err := sh.readNames()
	if err != nil {
		return 0
	}
	for _, n := range names {
		if classify(n) != kindEntry {
			continue
		}
		f, _, err := sh.openRead(n)
		if err != nil {
			continue
		}
		var h [6]byte
		_, err = io.ReadFull(f, h[:])
		f.Close()
		if err == nil && string(h[:4]) == magic && (h[5] == KindValue || h[5] == KindFile) {
			return h[5]
		}
	}
	return 0
}
