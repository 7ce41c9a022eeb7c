package plugins

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/regioncache/regioncache/plugins/internal/pb"
)

// ProtocolVersion is the newest plugin protocol version this package speaks
// (both as host and as plugin); it also speaks every version down to
// MinProtocolVersion. Hosts and plugins negotiate the highest version both
// speak in the go-plugin handshake. Version 2 adds multiplexed small calls,
// fenced stores, plugin information and file hand-over by path; version 3
// carries the small calls on a Unix socket of their own instead of a gRPC
// stream (see backend.proto). A host talking to an older plugin does without
// what it lacks.
const ProtocolVersion = 3

// MinProtocolVersion is the oldest plugin protocol version this package
// speaks.
const MinProtocolVersion = 1

// pluginSets returns the go-plugin plugin sets of every protocol version
// this package speaks; srv is nil on the host side. All versions share one
// server and client: the host checks the negotiated version before using
// what a version added.
func pluginSets(srv *server) map[int]plugin.PluginSet {
	sets := make(map[int]plugin.PluginSet)
	for v := MinProtocolVersion; v <= ProtocolVersion; v++ {
		sets[v] = plugin.PluginSet{pluginKey: &grpcPlugin{srv: srv}}
	}
	return sets
}

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

// grpcPlugin is the go-plugin plugin of every protocol version.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server // plugin side only
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, p.srv)
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
