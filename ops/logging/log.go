package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Log formats accepted by NewLogger and log.format.
const (
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// NewLogger returns a logger writing to w (os.Stderr when nil) at level
// (debug, info, warn or error; "" means error) in format (json or text; ""
// means json).
//
// Client IP addresses must never be logged raw: the gateway logs a keyed
// hash of the address (see package events), so even debug logs can be
// shared without exposing clients. Raw addresses live only in enforcement
// state (bans, access rules).
func NewLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("new logger: %w", err)
	}
	f, err := ParseFormat(format)
	if err != nil {
		return nil, fmt.Errorf("new logger: %w", err)
	}
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f == LogFormatText {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// ParseLevel parses a log level name, case-insensitively; "" is error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// ParseFormat parses a log format name, case-insensitively; "" is json.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case LogFormatJSON, "":
		return LogFormatJSON, nil
	case LogFormatText:
		return LogFormatText, nil
	}
	return "", fmt.Errorf("unknown log format %q (want json or text)", s)
}
