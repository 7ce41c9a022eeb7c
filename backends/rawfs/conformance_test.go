package rawfs_test

import (
	"testing"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/backends/rawfs"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
)

func TestConformance(t *testing.T) {
	fsstoretest.RunConformance(t, "rawfs", rawfs.Open, fsstoretest.Default)
}

func TestConformanceNoDistributedLock(t *testing.T) {
	fsstoretest.RunConformance(t, "rawfs", rawfs.Open, fsstoretest.NoDistributedLock)
}

func TestConformanceWithCacheSize(t *testing.T) {
	fsstoretest.RunConformance(t, "rawfs", rawfs.Open, fsstoretest.WithCacheSize)
}

func TestConformanceMovable(t *testing.T) {
	movable := fsstoretest.Variant{Suffix: "(file_movable)", Args: backends.Args{"file_movable": true}}
	fsstoretest.RunConformance(t, "rawfs", rawfs.Open, movable)
}
