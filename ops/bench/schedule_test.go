package bench

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a waiter whose time jumps to whatever it is asked to wait
// for, so the scheduler runs without real time passing.
type fakeClock struct {
	now time.Time
}

func (f *fakeClock) waitUntil(ctx context.Context, t time.Time) error {
	if t.After(f.now) {
		f.now = t
	}
	return ctx.Err()
}

// collect runs schedule with a fake clock and returns every slot sent.
func collect(t *testing.T, ctx context.Context, p plan) (slots []slot, sent, measured int64) {
	t.Helper()
	out := make(chan slot)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range out {
			slots = append(slots, s)
		}
	}()
	sent, measured = schedule(ctx, p, &fakeClock{now: p.start}, out)
	close(out)
	<-done
	return slots, sent, measured
}

func TestScheduleSlotCount(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		p            plan
		sent, measur int64
	}{
		{"100/s for 1s", plan{rate: 100, duration: time.Second}, 100, 100},
		{"3/s for 1s", plan{rate: 3, duration: time.Second}, 3, 3},
		{"7/s for 1s", plan{rate: 7, duration: time.Second}, 7, 7},
		{"0.5/s for 10s", plan{rate: 0.5, duration: 10 * time.Second}, 5, 5},
		{"1000/s for 2.5s", plan{rate: 1000, duration: 2500 * time.Millisecond}, 2500, 2500},
		{"1e6/s for 10ms", plan{rate: 1e6, duration: 10 * time.Millisecond}, 10000, 10000},
		{"warm-up 0.5s then 1s at 10/s", plan{rate: 10, warmup: 500 * time.Millisecond, duration: time.Second}, 15, 10},
		{"count 57 at 1000/s", plan{rate: 1000, count: 57, duration: time.Nanosecond}, 57, 57},
		{"count 5 after 1s warm-up at 10/s", plan{rate: 10, warmup: time.Second, count: 5}, 15, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.start = start
			slots, sent, measured := collect(t, context.Background(), p)
			if sent != tc.sent || measured != tc.measur || int64(len(slots)) != sent {
				t.Fatalf("sent %d (received %d) measured %d, want %d and %d", sent, len(slots), measured, tc.sent, tc.measur)
			}
			measureFrom := start.Add(p.warmup)
			for i, s := range slots {
				if want := start.Add(p.offset(int64(i))); !s.due.Equal(want) {
					t.Fatalf("slot %d due %v, want %v", i, s.due, want)
				}
				if i > 0 && !s.due.After(slots[i-1].due) {
					t.Fatalf("slot %d not after slot %d", i, i-1)
				}
				if s.measured != !s.due.Before(measureFrom) {
					t.Fatalf("slot %d due %v measured=%v, warm-up ends %v", i, s.due, s.measured, measureFrom)
				}
			}
		})
	}
}

func TestScheduleWaitsForEachSlot(t *testing.T) {
	start := time.Unix(1000, 0)
	rec := &recordingWaiter{}
	out := make(chan slot, 10)
	schedule(context.Background(), plan{start: start, rate: 4, duration: time.Second}, rec, out)
	want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}
	if len(rec.waits) != len(want) {
		t.Fatalf("waited %d times, want %d", len(rec.waits), len(want))
	}
	for i, w := range want {
		if got := rec.waits[i].Sub(start); got != w {
			t.Errorf("wait %d until +%v, want +%v", i, got, w)
		}
	}
}

type recordingWaiter struct{ waits []time.Time }

func (r *recordingWaiter) waitUntil(ctx context.Context, t time.Time) error {
	r.waits = append(r.waits, t)
	return ctx.Err()
}

func TestScheduleStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan slot) // nobody reads: schedule blocks on the first send
	done := make(chan int64)
	go func() {
		sent, _ := schedule(ctx, plan{start: time.Unix(0, 0), rate: 10, duration: time.Hour}, &fakeClock{}, out)
		done <- sent
	}()
	cancel()
	if sent := <-done; sent != 0 {
		t.Errorf("sent %d slots after cancel, want 0", sent)
	}
}

func TestTimerWaiterPastTimeReturnsAtOnce(t *testing.T) {
	now := time.Unix(100, 0)
	w := &timerWaiter{now: func() time.Time { return now }}
	defer w.stop()
	if err := w.waitUntil(context.Background(), now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.waitUntil(ctx, now.Add(time.Hour)); err == nil {
		t.Error("waitUntil on a cancelled context returned nil")
	}
}
