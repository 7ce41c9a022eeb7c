// Command testplugin is the plugin binary of this module's tests. It serves
// the in-tree backend named by its own executable name, so that one build
// copied to regioncache-backend-memory, regioncache-backend-filesystem, ...
// serves each of them; other names serve memory. Two names are special:
//
//	regioncache-backend-v99     speaks only plugin protocol version 99
//	regioncache-backend-broken  a memory backend that drops values larger
//	                            than 1 MiB and ignores deletes
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/regioncache/regioncache/backends"
	_ "github.com/regioncache/regioncache/backends/memory"
	"github.com/regioncache/regioncache/plugins"
)

func main() {
	name := plugins.NameOf(os.Args[0])
	switch name {
	case "v99":
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  plugins.Handshake(),
			VersionedPlugins: map[int]plugin.PluginSet{99: {"backend": v99{}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
		return
	case "broken":
		plugins.Serve(func(args backends.Args) (backends.Backend, error) {
			b, err := backends.Open("memory", args)
			if err != nil {
				return nil, err
			}
			return broken{b}, nil
		})
		return
	}
	f, ok := backends.Lookup(name)
	if !ok {
		f, _ = backends.Lookup("memory") // installed under another name
	}
	plugins.Serve(func(args backends.Args) (backends.Backend, error) {
		// Exercised by the tests: logs reach the host's slog, and stdout
		// after the handshake is ignored.
		slog.Info("testplugin: opening", "backend", name, "args", len(args))
		fmt.Println("stdout noise that the host must ignore")
		return f(args)
	})
}

// v99 is a plugin of a protocol version no host speaks.
type v99 struct{ plugin.NetRPCUnsupportedPlugin }

func (v99) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }
func (v99) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

// broken drops large values and ignores deletes.
type broken struct{ backends.Backend }

func (b broken) Set(ctx context.Context, key string, e backends.Entry) error {
	if len(e.Payload) > 1<<20 {
		return nil
	}
	return b.Backend.Set(ctx, key, e)
}

func (b broken) Delete(ctx context.Context, key string) error { return nil }
