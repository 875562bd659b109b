// Package testlog gives the servers a test starts a slog.Logger that writes
// to the test's log (t.Log): a passing test stays quiet, and a failing one,
// or any run with go test -v, shows what the servers logged.
package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a logger that writes every record, from debug level up, as a
// text line to t.Log. New registers a cleanup that stops the writing: it
// runs after the cleanups registered later, such as the Close of a server
// given this logger, and records logged after it are dropped, since t.Log
// must not be called once a test has finished. For a benchmark
// (*testing.B) New returns a logger that discards everything, so that the
// figures measure the server and not the test log.
func New(t testing.TB) *slog.Logger {
	t.Helper()
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	w := &writer{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// writer passes each record, which a slog.TextHandler writes in one call,
// to t.Log until the test ends.
type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
