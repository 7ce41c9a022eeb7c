package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/regioncache/regioncache/backends"
)

// parseAge reads a duration the way people write ages: a Go duration
// ("48h", "90m"), days ("2d", "1d12h", "1.5d") or a number of seconds
// ("3600"). It must be positive.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf(`want a duration such as "48h", "2d", "1d12h" or a number of seconds, got %q`, s)
	if s == "" {
		return 0, bad
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 || n > float64(1<<62)/float64(time.Second) {
			return 0, bad
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100000 {
			return 0, bad
		}
		d = time.Duration(n * 24 * float64(time.Hour))
		s = rest
	}
	if s != "" {
		r, err := time.ParseDuration(s)
		if err != nil {
			return 0, bad
		}
		d += r
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

// parseSize reads a size: bytes or "512MiB", "1.5GB"; 0 is allowed.
func parseSize(s string) (int64, error) {
	n, err := backends.ParseSize(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf(`want a size such as "512MiB", "1GB" or a number of bytes (0 empties), got %q`, s)
	}
	return n, nil
}
