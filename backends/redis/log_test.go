package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// go-redis's own log lines go through slog's default logger.
func TestGoRedisLogsThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	slogLogger{}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 5)
	got := buf.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "component=go-redis") || !strings.Contains(got, "failed to dial after 5 attempts") {
		t.Fatalf("log line %q", got)
	}
}
