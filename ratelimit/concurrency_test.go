package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentAllow hammers a set of keys from many goroutines, with
// Sweep and Len running alongside, and checks the token accounting of
// every key: no token is taken twice or lost.
func TestConcurrentAllow(t *testing.T) {
	tests := []struct {
		name string
		tick time.Duration // the clock advances this much on every reading
	}{
		{name: "frozen clock", tick: 0},
		{name: "advancing clock", tick: time.Microsecond},
	}
	const (
		goroutines = 16
		keys       = 64
		perKey     = 200 // requests per goroutine and key
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var ticks atomic.Int64
			cfg := DefaultConfig()
			cfg.Now = func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * tc.tick) }
			l, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}

			var counts [keys][3]atomic.Int64 // per key and verdict
			var maxViolations [keys]atomic.Uint32
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var housekeeping sync.WaitGroup
			housekeeping.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						l.Sweep()
						if n := l.Len(); n > keys {
							t.Errorf("Len() = %d > %d keys", n, keys)
						}
					}
				}
			})
			for g := range goroutines {
				wg.Go(func() {
					for i := range perKey * keys {
						k := (i + g*7) % keys // each goroutine starts elsewhere
						r := l.Allow(v6(uint32(k)))
						counts[k][r.Verdict].Add(1)
						for {
							old := maxViolations[k].Load()
							if r.Violations <= old || maxViolations[k].CompareAndSwap(old, r.Violations) {
								break
							}
						}
					}
				})
			}
			wg.Wait()
			close(stop)
			housekeeping.Wait()

			elapsed := time.Duration(ticks.Load()) * tc.tick
			for k := range keys {
				allow, soft, hard := counts[k][Allow].Load(), counts[k][Soft].Load(), counts[k][Hard].Load()
				if total := allow + soft + hard; total != goroutines*perKey {
					t.Fatalf("key %d: %d verdicts, want %d", k, total, goroutines*perKey)
				}
				if tc.tick == 0 {
					if allow != 10 || soft != 20 {
						t.Errorf("key %d: %d allowed and %d soft, want exactly 10 and 20", k, allow, soft)
					}
				}
				// Never more than the burst plus what the elapsed time refilled.
				if limit := 10 + int64(elapsed/time.Second); allow > limit {
					t.Errorf("key %d: %d allowed in %v, want <= %d", k, allow, elapsed, limit)
				}
				v := l.Violations(v6(uint32(k)))
				if int64(v) != soft+hard || maxViolations[k].Load() != v {
					t.Errorf("key %d: Violations %d, max seen %d, want %d", k, v, maxViolations[k].Load(), soft+hard)
				}
			}
		})
	}
}
