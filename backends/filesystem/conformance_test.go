package filesystem_test

import (
	"testing"

	"github.com/regioncache/regioncache/backends/filesystem"
	"github.com/regioncache/regioncache/internal/fsstore/fsstoretest"
)

func TestConformance(t *testing.T) {
	fsstoretest.RunConformance(t, "filesystem", filesystem.Open, fsstoretest.Default)
}

func TestConformanceNoDistributedLock(t *testing.T) {
	fsstoretest.RunConformance(t, "filesystem", filesystem.Open, fsstoretest.NoDistributedLock)
}

func TestConformanceWithCacheSize(t *testing.T) {
	fsstoretest.RunConformance(t, "filesystem", filesystem.Open, fsstoretest.WithCacheSize)
}
