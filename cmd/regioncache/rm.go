package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/internal/fsstore"
)

func init() {
	register(&command{
		name:  "rm",
		usage: "rm [-y] <dir> <key>...",
		short: "remove entries by key from a filesystem or rawfs cache directory (asks first)",
		run:   runRm,
	})
}

func runRm(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("rm", e)
	yes := fs.Bool("y", false, "do not ask for confirmation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("want a cache directory and at least one key")
	}
	dir, keys := fs.Arg(0), fs.Args()[1:]
	in := bufio.NewReader(e.stdin)
	return withStore(dir, func(s *fsstore.Store) error {
		var missing []string
		for _, k := range keys {
			info, err := describe(ctx, s, k)
			if errors.Is(err, backends.ErrNotFound) {
				missing = append(missing, printableKey(k))
				continue
			}
			if err != nil {
				return err
			}
			if !*yes {
				fmt.Fprintf(e.stderr, "remove %s (%s)? [y/N] ", printableKey(k), info)
				line, _ := in.ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					fmt.Fprintf(e.stdout, "kept %s\n", printableKey(k))
					continue
				}
			}
			if err := s.RemoveKey(ctx, k); err != nil {
				if errors.Is(err, fsstore.ErrNoEntry) {
					missing = append(missing, printableKey(k))
					continue
				}
				return err
			}
			fmt.Fprintf(e.stdout, "removed %s\n", printableKey(k))
		}
		if len(missing) > 0 {
			return fmt.Errorf("no entry for %s in %s", strings.Join(missing, ", "), dir)
		}
		return nil
	})
}

// describe finds key's entry and summarises it for the prompt.
func describe(ctx context.Context, s *fsstore.Store, key string) (string, error) {
	info, err := s.Info(ctx, key)
	if err != nil {
		return "", err
	}
	age := "unknown age"
	if !info.Created.IsZero() {
		age = "created " + humanAge(time.Since(info.Created)) + " ago"
	}
	return fmt.Sprintf("%s, %s", humanBytes(info.Size), age), nil
}
