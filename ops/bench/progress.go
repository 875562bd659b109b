package bench

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressPrinter writes a progress line every interval: one line
// rewritten in place on a terminal, one line per interval otherwise, and a
// last line when the run ends.
type progressPrinter struct {
	r    *runner
	w    io.Writer
	tty  bool
	done chan struct{}
	exit chan struct{}

	lastT    time.Time
	lastDone int64
}

func startProgress(r *runner, w io.Writer) *progressPrinter {
	p := &progressPrinter{
		r: r, w: w, tty: isTerminal(w),
		done: make(chan struct{}), exit: make(chan struct{}),
		lastT: r.start,
	}
	go p.loop()
	return p
}

// stop prints the last line and waits for the printer to exit.
func (p *progressPrinter) stop() {
	close(p.done)
	<-p.exit
}

func (p *progressPrinter) loop() {
	defer close(p.exit)
	t := time.NewTicker(p.r.o.Progress)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.print(false)
		case <-p.done:
			p.print(true)
			if p.tty {
				fmt.Fprintln(p.w)
			}
			return
		}
	}
}

// print writes one progress line.
func (p *progressPrinter) print(final bool) {
	now := p.r.now()
	var done, errs, bytes int64
	for _, w := range p.r.workers {
		done += w.live.done.Load()
		errs += w.live.errs.Load()
		bytes += w.live.bytes.Load()
	}
	rate := 0.0
	if dt := now.Sub(p.lastT).Seconds(); dt > 0 {
		rate = float64(done-p.lastDone) / dt
	}
	p.lastT, p.lastDone = now, done
	line := formatProgress(now.Sub(p.r.start), phase(now, p.r.measureFrom, final), done, errs, bytes, rate)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// phase names the part of the run at now.
func phase(now, measureFrom time.Time, final bool) string {
	switch {
	case final:
		return "done"
	case now.Before(measureFrom):
		return "warmup"
	}
	return "running"
}

// formatProgress renders a progress line. Counts include warm-up requests;
// rate is over the last interval.
func formatProgress(elapsed time.Duration, phase string, done, errs, bytes int64, rate float64) string {
	return fmt.Sprintf("%7.1fs %-7s %10d requests %9.0f req/s %8d errors %10s received",
		elapsed.Seconds(), phase, done, rate, errs, formatBytes(float64(bytes)))
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
