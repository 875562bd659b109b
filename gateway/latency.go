package gateway

import (
	"io"
	"sync"
	"time"
)

// streamFlushDelay is the longest a relayed response's bytes wait in the
// gateway's buffer: a slow upstream's output reaches the client within
// this delay, while a fast one still leaves in full segments (and a small
// response in one, with its close_notify).
const streamFlushDelay = 50 * time.Millisecond

// latencyWriter bounds how long written bytes stay buffered: the first
// write after a flush arms a timer, and when it fires whatever is held is
// flushed. Writes and the timer's flush are serialised by mu. stop must
// be called before the response is finished.
type latencyWriter struct {
	mu      sync.Mutex
	w       io.Writer
	f       Flusher
	delay   time.Duration
	t       *time.Timer
	pending bool
	stopped bool
}

// newLatencyWriter wraps w, whose header (and perhaps body) may already be
// buffered: the timer starts at once. A w that cannot flush is returned
// as is, with a no-op stop.
func newLatencyWriter(w ResponseWriter, delay time.Duration) (io.Writer, func()) {
	f, ok := w.(Flusher)
	if !ok {
		return w, func() {}
	}
	lw := &latencyWriter{w: w, f: f, delay: delay, pending: true}
	lw.t = time.AfterFunc(delay, lw.flushPending)
	return lw, lw.stop
}

func (l *latencyWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if !l.pending && !l.stopped {
		l.pending = true
		l.t.Reset(l.delay)
	}
	return n, err
}

func (l *latencyWriter) flushPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending && !l.stopped {
		l.f.Flush()
		l.pending = false
	}
}

// stop disarms the timer; the caller's own final flush sends the rest.
func (l *latencyWriter) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	l.t.Stop()
}
