package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regioncache/regioncache/backends"
	"github.com/regioncache/regioncache/lock"
)

// ErrPluginExited is wrapped by the error of every call that failed because
// the plugin process exited (crashed, was killed) or could not be reached.
// The next call starts the plugin again.
var ErrPluginExited = errors.New("plugin process exited")

// ErrChecksumMismatch is wrapped by the error of Open (and of Verify) when an
// installed plugin binary's SHA-256 differs from the one pinned at install.
var ErrChecksumMismatch = errors.New("plugin binary does not match its pinned SHA-256")

// ErrNotPlugin is wrapped by the error of Open (and Probe, Describe,
// Install) when the executable is not a regioncache plugin: not an
// executable file, or a program that does not answer the plugin handshake.
var ErrNotPlugin = errors.New("not a regioncache plugin")

// ErrProtocolVersion is wrapped by the error of Open when the plugin speaks
// no plugin protocol version this host speaks.
var ErrProtocolVersion = errors.New("plugin speaks an unsupported protocol version")

// toStatus turns a backend error into a gRPC status whose code names the
// sentinel it wraps (see backend.proto).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	var code codes.Code
	switch {
	case errors.Is(err, backends.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, backends.ErrClosed):
		code = codes.FailedPrecondition
	case errors.Is(err, backends.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, backends.ErrBadArgument):
		code = codes.InvalidArgument
	case errors.Is(err, lock.ErrLost):
		code = codes.Aborted
	case errors.Is(err, lock.ErrReleased):
		code = codes.AlreadyExists
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		code = codes.Unknown
	}
	return status.Error(code, msg)
}

// remoteError is an error reported by a plugin (or by the transport to it).
type remoteError struct {
	plugin string
	msg    string
	kind   error // the sentinel; nil for errors without one
}

func (e *remoteError) Error() string {
	return "plugin " + e.plugin + ": " + e.msg
}

func (e *remoteError) Unwrap() error { return e.kind }

// fromStatus turns the error of a gRPC call to plugin name into an error
// wrapping the matching sentinel. ctx is the caller's context: when it ended,
// its error is what the caller gets. exited reports whether the plugin
// process is known to be gone.
func fromStatus(ctx context.Context, name string, err error, exited bool) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		return fmt.Errorf("plugin %s: %w", name, ctx.Err())
	}
	st, ok := status.FromError(err)
	if !ok {
		if exited {
			return &remoteError{plugin: name, msg: ErrPluginExited.Error() + ": " + err.Error(), kind: ErrPluginExited}
		}
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	var kind error
	msg := st.Message()
	code := st.Code()
	if code == codes.Unavailable || exited && (code == codes.Canceled || code == codes.Internal || code == codes.Unknown) {
		return &remoteError{plugin: name, msg: ErrPluginExited.Error() + ": " + msg, kind: ErrPluginExited}
	}
	switch code {
	case codes.NotFound:
		kind = backends.ErrNotFound
	case codes.FailedPrecondition:
		kind = backends.ErrClosed
	case codes.Unimplemented:
		kind = backends.ErrUnsupported
	case codes.InvalidArgument:
		kind = backends.ErrBadArgument
	case codes.Aborted:
		kind = lock.ErrLost
	case codes.AlreadyExists:
		kind = lock.ErrReleased
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	}
	return &remoteError{plugin: name, msg: msg, kind: kind}
}
