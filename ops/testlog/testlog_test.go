package testlog

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what is logged and the cleanups.
type recorder struct {
	testing.TB
	lines    []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Log(args ...any)  { r.lines = append(r.lines, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestNewWritesToTestLog(t *testing.T) {
	r := &recorder{TB: t}
	log := New(r)
	log.Debug("handshake", "err", "eof")
	log.Info("request", "status", 20)
	if len(r.lines) != 2 {
		t.Fatalf("logged %q, want two lines", r.lines)
	}
	for i, want := range []string{"level=DEBUG msg=handshake err=eof", "level=INFO msg=request status=20"} {
		if !strings.Contains(r.lines[i], want) || strings.HasSuffix(r.lines[i], "\n") {
			t.Errorf("line %d = %q, want it to hold %q and no newline", i, r.lines[i], want)
		}
	}
	r.runCleanups()
	log.Error("after the test")
	if len(r.lines) != 2 {
		t.Errorf("logged after cleanup: %q", r.lines[2:])
	}
}

func TestNewDiscardsInBenchmarks(t *testing.T) {
	enabled := true
	testing.Benchmark(func(b *testing.B) {
		enabled = New(b).Enabled(context.Background(), slog.LevelError)
	})
	if enabled {
		t.Error("a benchmark's logger is enabled")
	}
}
