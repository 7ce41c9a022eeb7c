package plugins

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// ProtocolVersion is the plugin protocol version this package speaks (both
// as host and as plugin). A later, incompatible protocol gets a new number;
// hosts and plugins negotiate the highest version both speak, so a host can
// speak several.
const ProtocolVersion = 1

// ChunkSize is the largest payload carried in one message. Larger payloads
// are streamed in chunks of this size.
const ChunkSize = 1 << 20

// Prefix is how every plugin executable's name starts: a plugin serving
// backend "bolt" is named regioncache-backend-bolt (.exe on Windows).
const Prefix = "regioncache-backend-"

// pluginKey names the backend plugin in go-plugin's plugin set.
const pluginKey = "backend"

// Handshake returns the go-plugin handshake of regioncache plugins. Plugins
// started by something other than a regioncache host (for example from a
// shell) see no magic cookie and exit with a message saying what they are.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "REGIONCACHE_PLUGIN_MAGIC_COOKIE",
		MagicCookieValue: "d2a6c1f8-regioncache-backend-plugin",
	}
}

// grpcPlugin is the go-plugin plugin of protocol version 1.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	factory backends.Factory // plugin side only
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, newServer(p.factory))
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewBackendClient(c), nil
}

// hostFDEnvName names the environment variable that tells a plugin which
// file descriptor watches its host (see hostwatch_unix.go).
const (
	hostFDEnvName   = "REGIONCACHE_PLUGIN_HOST_FD"
	hostFDEnvPrefix = hostFDEnvName + "="
)
