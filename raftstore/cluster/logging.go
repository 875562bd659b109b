package cluster

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogLevel gives Raft's logger the level of ours, so Raft is as quiet
// as the node (error by default).
func hclogLevel(l *slog.Logger) hclog.Level {
	ctx := context.Background()
	switch {
	case l.Enabled(ctx, slog.LevelDebug):
		return hclog.Debug
	case l.Enabled(ctx, slog.LevelInfo):
		return hclog.Info
	case l.Enabled(ctx, slog.LevelWarn):
		return hclog.Warn
	case l.Enabled(ctx, slog.LevelError):
		return hclog.Error
	}
	return hclog.Off
}

// slogWriter carries Raft's log lines (already filtered by hclogLevel)
// into our logger, one record per line, at the level hclog wrote.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		lvl := slog.LevelInfo
		switch {
		case bytes.Contains(line, []byte("[ERROR]")):
			lvl = slog.LevelError
		case bytes.Contains(line, []byte("[WARN]")):
			lvl = slog.LevelWarn
		case bytes.Contains(line, []byte("[DEBUG]")), bytes.Contains(line, []byte("[TRACE]")):
			lvl = slog.LevelDebug
		}
		w.l.Log(context.Background(), lvl, "raft", "line", string(line))
	}
	return len(p), nil
}
