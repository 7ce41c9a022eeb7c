package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// go-redis logs connection-pool trouble through one process-wide logger of
// its own, which by default writes to standard error past any log/slog
// setup. Importing this package routes those lines through slog's default
// logger instead, at Warn, with component=go-redis, so that they reach the
// same handler as the regions' own logs.
func init() { goredis.SetLogger(slogLogger{}) }

type slogLogger struct{}

func (slogLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	slog.Default().WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}
