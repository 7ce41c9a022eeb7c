package redis_test

import (
	"context"
	"errors"
	"log"
	"time"

	goredis "github.com/redis/go-redis/v9"

	rcredis "github.com/regioncache/regioncache/backends/redis"
	"github.com/regioncache/regioncache/lock"
)

// The Redis lock on its own: here guarding a cache directory on NFS that
// several machines share.
func ExampleNewLock() {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	locker := rcredis.NewLock(client, rcredis.LockOptions{Prefix: "nfs-cache:lock:", TTL: 20 * time.Second})
	defer locker.Close()

	h, err := locker.Lock(context.Background(), "report-2024.pdf")
	if err != nil {
		log.Fatal(err)
	}
	// ... build the file and rename it into place (a whole-value write) ...
	if err := h.Unlock(); errors.Is(err, lock.ErrLost) {
		// The lease ran out while we worked: another machine may have built
		// the file too. Harmless for whole-value writes; worth a log line.
		log.Print(err)
	}
}
