package bench

import (
	"context"
	"time"
)

// slot is one planned request of the open loop.
type slot struct {
	due      time.Time // scheduled start: latency is measured from here
	measured bool      // false during the warm-up
}

// plan is the open loop's timetable: slot i is due at start + i/rate.
type plan struct {
	start    time.Time
	rate     float64       // slots per second, > 0
	warmup   time.Duration // slots due before start+warmup are not measured
	duration time.Duration // measured window; used when count == 0
	count    int64         // measured slots to plan; 0 means use duration
}

// offset returns when slot i is due, relative to p.start. It multiplies
// instead of accumulating, so rounding errors do not drift.
func (p plan) offset(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / p.rate)
}

// waiter blocks until a point in time. The real one uses a timer; tests pass
// a fake clock so the scheduler runs without real time passing.
type waiter interface {
	waitUntil(ctx context.Context, t time.Time) error
}

// schedule sends every slot of p to out, each no earlier than its due time,
// and returns the number of slots sent and how many of those were measured.
// It never skips a slot: when workers fall behind it blocks on out and then
// sends the overdue slots with their original due times. It stops early
// when ctx is done. The caller closes out.
func schedule(ctx context.Context, p plan, w waiter, out chan<- slot) (sent, measured int64) {
	measureFrom := p.warmup
	end := p.warmup + p.duration
	for i := int64(0); ; i++ {
		off := p.offset(i)
		m := off >= measureFrom
		if p.count > 0 {
			if m && measured >= p.count {
				return sent, measured
			}
		} else if off >= end {
			return sent, measured
		}
		due := p.start.Add(off)
		if err := w.waitUntil(ctx, due); err != nil {
			return sent, measured
		}
		select {
		case out <- slot{due: due, measured: m}:
		case <-ctx.Done():
			return sent, measured
		}
		sent++
		if m {
			measured++
		}
	}
}

// timerWaiter waits with one reusable timer, reading the time from now.
type timerWaiter struct {
	now   func() time.Time
	timer *time.Timer
}

func (w *timerWaiter) waitUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(w.now())
	if d <= 0 {
		return ctx.Err()
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return nil
	case <-ctx.Done():
		w.timer.Stop()
		return ctx.Err()
	}
}

// stop releases the timer.
func (w *timerWaiter) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}
