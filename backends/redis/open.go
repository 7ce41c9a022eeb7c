package redis

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/regioncache/regioncache/backends"
)

var knownArgs = []string{
	"url", "host", "port", "db", "username", "password", "tls",
	"addrs", "master_name", "cluster", "cluster_layout", "socket_timeout",
	"prefix", "redis_expiration_time", "distributed_lock", "lock_timeout", "local_cache",
}

// Open connects to Redis as args say (see the package doc) and returns a
// backend that owns its client. It does not contact the server: a server
// that is down makes the first calls fail, not Open.
func Open(args backends.Args) (*Backend, error) {
	if err := args.Only(knownArgs...); err != nil {
		return nil, err
	}
	uo, err := clientOptions(args)
	if err != nil {
		return nil, err
	}
	var opts Options
	if opts.Prefix, err = args.String("prefix", DefaultPrefix); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		return nil, fmt.Errorf("%w: prefix: want a non-empty string", backends.ErrBadArgument)
	}
	if opts.StorageTTL, err = args.Duration("redis_expiration_time", 0); err != nil {
		return nil, err
	}
	lockOn, err := args.Bool("distributed_lock", true)
	if err != nil {
		return nil, err
	}
	opts.NoLock = !lockOn
	if opts.LockTimeout, err = args.Duration("lock_timeout", 0); err != nil {
		return nil, err
	}
	if args.Has("lock_timeout") && opts.LockTimeout == 0 {
		return nil, fmt.Errorf("%w: lock_timeout: want a positive duration, got %v", backends.ErrBadArgument, args["lock_timeout"])
	}
	layout, err := args.String("cluster_layout", "slot")
	if err != nil {
		return nil, err
	}
	switch layout {
	case "slot":
		opts.Layout = LayoutSlot
	case "spread":
		opts.Layout = LayoutSpread
	default:
		return nil, fmt.Errorf("%w: cluster_layout: want \"slot\" (one slot per region) or \"spread\" (keys spread over 256 slots), got %q",
			backends.ErrBadArgument, layout)
	}
	if opts.LocalCache, err = localCacheArg(args); err != nil {
		return nil, err
	}
	client := goredis.NewUniversalClient(uo)
	b, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

func clientOptions(args backends.Args) (*goredis.UniversalOptions, error) {
	uo := &goredis.UniversalOptions{ContextTimeoutEnabled: true}
	if args.Has("url") {
		for _, k := range []string{"host", "port", "db", "username", "password", "tls", "addrs", "master_name", "cluster"} {
			if args.Has(k) {
				return nil, fmt.Errorf("%w: %s: not allowed together with url (put it in the url)", backends.ErrBadArgument, k)
			}
		}
		u, _ := args.String("url", "")
		o, err := goredis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("%w: url: want redis://[user:password@]host:port/db or rediss://...: %v", backends.ErrBadArgument, err)
		}
		uo.Addrs = []string{o.Addr}
		uo.DB, uo.Username, uo.Password, uo.TLSConfig = o.DB, o.Username, o.Password, o.TLSConfig
	} else {
		addrs, err := args.HostPorts("addrs")
		if err != nil {
			return nil, err
		}
		if len(addrs) > 0 && (args.Has("host") || args.Has("port")) {
			return nil, fmt.Errorf("%w: addrs: not allowed together with host/port", backends.ErrBadArgument)
		}
		if len(addrs) == 0 {
			host, err := args.String("host", "127.0.0.1")
			if err != nil {
				return nil, err
			}
			port, err := args.Int("port", 6379)
			if err != nil {
				return nil, err
			}
			if port <= 0 || port > 65535 {
				return nil, fmt.Errorf("%w: port: want 1-65535, got %d", backends.ErrBadArgument, port)
			}
			addrs = []string{net.JoinHostPort(host, strconv.Itoa(port))}
		}
		uo.Addrs = addrs
		if uo.DB, err = args.Int("db", 0); err != nil {
			return nil, err
		}
		if uo.DB < 0 {
			return nil, fmt.Errorf("%w: db: want a database number >= 0, got %d", backends.ErrBadArgument, uo.DB)
		}
		if uo.Username, err = args.String("username", ""); err != nil {
			return nil, err
		}
		if uo.Password, err = args.String("password", ""); err != nil {
			return nil, err
		}
		useTLS, err := args.Bool("tls", false)
		if err != nil {
			return nil, err
		}
		if useTLS {
			host, _, _ := net.SplitHostPort(addrs[0])
			uo.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if uo.MasterName, err = args.String("master_name", ""); err != nil {
			return nil, err
		}
		if uo.IsClusterMode, err = args.Bool("cluster", false); err != nil {
			return nil, err
		}
		if uo.MasterName != "" && uo.IsClusterMode {
			return nil, fmt.Errorf("%w: master_name: Sentinel and cluster=true exclude each other", backends.ErrBadArgument)
		}
		if uo.MasterName == "" && (len(addrs) > 1 || uo.IsClusterMode) && uo.DB != 0 {
			return nil, fmt.Errorf("%w: db: Redis Cluster has only database 0, got %d", backends.ErrBadArgument, uo.DB)
		}
	}
	st, err := args.Duration("socket_timeout", 0)
	if err != nil {
		return nil, err
	}
	if st > 0 {
		uo.ReadTimeout, uo.WriteTimeout, uo.DialTimeout = st, st, st
	}
	return uo, nil
}

// localCacheArg reads local_cache: a number of entries (an integer, or a
// string of digits) or a size in bytes ("64MiB").
func localCacheArg(args backends.Args) (*LocalCacheOptions, error) {
	v, ok := args["local_cache"]
	if !ok || v == nil {
		return nil, nil
	}
	const want = `a number of entries (e.g. 10000) or a size in bytes (e.g. "64MiB")`
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if n, err := strconv.Atoi(s); err == nil {
			if n <= 0 {
				return nil, fmt.Errorf("%w: local_cache: want %s, got %q", backends.ErrBadArgument, want, s)
			}
			return &LocalCacheOptions{MaxEntries: n}, nil
		}
		n, err := backends.ParseSize(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%w: local_cache: want %s, got %q", backends.ErrBadArgument, want, s)
		}
		return &LocalCacheOptions{MaxBytes: n}, nil
	}
	n, err := args.Int("local_cache", 0)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: local_cache: want %s, got %d", backends.ErrBadArgument, want, n)
	}
	return &LocalCacheOptions{MaxEntries: n}, nil
}
