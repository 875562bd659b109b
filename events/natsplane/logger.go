package natsplane

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// logAdapter is nats-server's Logger over slog. It also keeps the last
// fatal message, which nats-server logs (and then stops starting) instead
// of returning an error.
type logAdapter struct {
	l *slog.Logger // nil: discard

	mu        sync.Mutex
	lastFatal string
}

func newLogAdapter(l *slog.Logger) *logAdapter {
	if l != nil {
		l = l.With("component", "nats")
	}
	return &logAdapter{l: l}
}

func (a *logAdapter) debug() bool {
	return a.l != nil && a.l.Enabled(context.Background(), slog.LevelDebug)
}

func (a *logAdapter) log(level slog.Level, format string, v []any) {
	if a.l != nil && a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (a *logAdapter) fatal() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastFatal
}

// Noticef implements server.Logger.
func (a *logAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }

// Warnf implements server.Logger.
func (a *logAdapter) Warnf(format string, v ...any) { a.log(slog.LevelWarn, format, v) }

// Errorf implements server.Logger.
func (a *logAdapter) Errorf(format string, v ...any) { a.log(slog.LevelError, format, v) }

// Fatalf implements server.Logger: logged as an error and kept for Start,
// never exiting the process.
func (a *logAdapter) Fatalf(format string, v ...any) {
	a.mu.Lock()
	a.lastFatal = fmt.Sprintf(format, v...)
	a.mu.Unlock()
	a.log(slog.LevelError, format, v)
}

// Debugf implements server.Logger.
func (a *logAdapter) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Tracef implements server.Logger; protocol traces are never enabled.
func (a *logAdapter) Tracef(string, ...any) {}
