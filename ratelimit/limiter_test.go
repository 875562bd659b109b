package ratelimit

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

var client = netip.MustParseAddr("198.51.100.7")

// TestBurstSoftHard walks the default config through its three zones with
// every request at the same instant (no refill): request i leaves 10-i
// tokens, floored at -30.
func TestBurstSoftHard(t *testing.T) {
	l, _ := newTestLimiter(t, DefaultConfig())
	tests := []struct {
		name     string
		from, to int // request numbers, inclusive
		want     Verdict
	}{
		{name: "burst of capacity", from: 1, to: 10, want: Allow},
		{name: "soft zone of (HardFactor-1)*capacity", from: 11, to: 30, want: Soft},
		{name: "hard beyond", from: 31, to: 100, want: Hard},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := tc.from; i <= tc.to; i++ {
				r := l.Allow(client)
				if r.Verdict != tc.want {
					t.Fatalf("request %d: verdict %v, want %v", i, r.Verdict, tc.want)
				}
				wantViolations := uint32(max(0, i-10))
				if r.Violations != wantViolations {
					t.Errorf("request %d: violations %d, want %d", i, r.Violations, wantViolations)
				}
				// Balance after request i is max(10-i, -30); one token is
				// 1-balance tokens away at 1 token/s.
				wantRetry := time.Duration(0)
				if i > 10 {
					wantRetry = time.Duration(1-max(10-i, -30)) * time.Second
				}
				if r.RetryAfter != wantRetry {
					t.Errorf("request %d: RetryAfter %v, want %v", i, r.RetryAfter, wantRetry)
				}
			}
		})
	}
}

func TestRefill(t *testing.T) {
	tests := []struct {
		name        string
		quiet       time.Duration // after emptying the bucket with 10 requests
		wantAllowed int           // requests allowed in a burst afterwards
	}{
		{name: "no time", quiet: 0, wantAllowed: 0},
		{name: "half a token", quiet: 500 * time.Millisecond, wantAllowed: 0},
		{name: "one token", quiet: time.Second, wantAllowed: 1},
		{name: "just under two", quiet: 2*time.Second - time.Nanosecond, wantAllowed: 1},
		{name: "seven tokens", quiet: 7 * time.Second, wantAllowed: 7},
		{name: "full", quiet: 10 * time.Second, wantAllowed: 10},
		{name: "capped at capacity", quiet: time.Hour, wantAllowed: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, DefaultConfig())
			if r := allowN(t, l, client, 10); r.Verdict != Allow {
				t.Fatalf("10th request: %v, want allow", r.Verdict)
			}
			clk.Advance(tc.quiet)
			allowed := 0
			for l.Allow(client).Verdict == Allow {
				allowed++
			}
			if allowed != tc.wantAllowed {
				t.Errorf("allowed %d after %v, want %d", allowed, tc.quiet, tc.wantAllowed)
			}
		})
	}
}

func TestRefillFractionalRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RefillPerSec = 0.25 // one token every 4 s
	l, clk := newTestLimiter(t, cfg)
	allowN(t, l, client, 10)
	clk.Advance(4*time.Second - 4*time.Millisecond)
	// 0.999 tokens refilled, the request leaves -0.001: one token is
	// 1.001/0.25 = 4.004 s away, give or take the nanosecond that float
	// rounding of 0.999 costs.
	r := l.Allow(client)
	if r.Verdict != Soft || r.RetryAfter < 4004*time.Millisecond || r.RetryAfter > 4004*time.Millisecond+time.Nanosecond {
		t.Fatalf("just before one token: %v %v, want soft 4.004s", r.Verdict, r.RetryAfter)
	}
	clk.Advance(r.RetryAfter)
	if r := l.Allow(client); r.Verdict != Allow {
		t.Fatalf("after refill: %v, want allow", r.Verdict)
	}
}

// TestRetryAfter checks RetryAfter against its definition: the next request
// is refused RetryAfter-1ns later and allowed RetryAfter later.
//
// With capacity 10 and 1 token/s, the 11th request of a burst leaves the
// bucket at -1 token. The next request is allowed once the bucket holds one
// token, i.e. after 2 tokens of refill: RetryAfter is 2 s and
// RetryAfterSeconds() is 2 (not 1: after 1 s the bucket only holds 0 tokens
// and the request would take it to -1).
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name        string
		capacity    float64
		refill      float64
		hardFactor  float64
		requests    int
		wantVerdict Verdict
		wantRetry   time.Duration
		wantSeconds int
	}{
		{name: "11th of default", capacity: 10, refill: 1, hardFactor: 3, requests: 11, wantVerdict: Soft, wantRetry: 2 * time.Second, wantSeconds: 2},
		{name: "last soft of default", capacity: 10, refill: 1, hardFactor: 3, requests: 30, wantVerdict: Soft, wantRetry: 21 * time.Second, wantSeconds: 21},
		{name: "first hard of default", capacity: 10, refill: 1, hardFactor: 3, requests: 31, wantVerdict: Hard, wantRetry: 22 * time.Second, wantSeconds: 22},
		{name: "floored debt", capacity: 10, refill: 1, hardFactor: 3, requests: 500, wantVerdict: Hard, wantRetry: 31 * time.Second, wantSeconds: 31},
		{name: "fast refill rounds up to 1 s", capacity: 10, refill: 4, hardFactor: 3, requests: 11, wantVerdict: Soft, wantRetry: 500 * time.Millisecond, wantSeconds: 1},
		{name: "third-of-a-second tokens", capacity: 10, refill: 3, hardFactor: 3, requests: 11, wantVerdict: Soft, wantRetry: 666666667, wantSeconds: 1},
		{name: "slow refill", capacity: 1, refill: 0.1, hardFactor: 2, requests: 2, wantVerdict: Soft, wantRetry: 20 * time.Second, wantSeconds: 20},
		{name: "no soft zone", capacity: 5, refill: 1, hardFactor: 1, requests: 6, wantVerdict: Hard, wantRetry: 2 * time.Second, wantSeconds: 2},
		{name: "fractional capacity", capacity: 2.5, refill: 1, hardFactor: 3, requests: 2, wantVerdict: Allow, wantRetry: 0, wantSeconds: 0},
		{name: "fractional capacity in debt", capacity: 2.5, refill: 1, hardFactor: 3, requests: 3, wantVerdict: Soft, wantRetry: 1500 * time.Millisecond, wantSeconds: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Capacity, cfg.RefillPerSec, cfg.HardFactor = tc.capacity, tc.refill, tc.hardFactor
			run := func(wait time.Duration) Result {
				t.Helper()
				l, clk := newTestLimiter(t, cfg)
				r := allowN(t, l, client, tc.requests)
				clk.Advance(wait)
				if wait > 0 {
					return l.Allow(client)
				}
				return r
			}
			r := run(0)
			if r.Verdict != tc.wantVerdict || r.RetryAfter != tc.wantRetry || r.RetryAfterSeconds() != tc.wantSeconds {
				t.Fatalf("got %v, RetryAfter %v (%d s), want %v, %v (%d s)",
					r.Verdict, r.RetryAfter, r.RetryAfterSeconds(), tc.wantVerdict, tc.wantRetry, tc.wantSeconds)
			}
			if r.Verdict == Allow {
				return
			}
			if next := run(r.RetryAfter - time.Nanosecond); next.Verdict == Allow {
				t.Errorf("request RetryAfter-1ns later was allowed")
			}
			if next := run(r.RetryAfter); next.Verdict != Allow {
				t.Errorf("request RetryAfter later: %v, want allow", next.Verdict)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	var maxSeconds int64 = math.MaxInt64/int64(time.Second) + 1 // 9223372037
	if maxSeconds > math.MaxInt {
		maxSeconds = math.MaxInt // saturated on 32-bit platforms
	}
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{2 * time.Second, 2},
		{90 * time.Second, 90},
		{math.MaxInt64, maxSeconds},
	}
	for _, tc := range tests {
		if got := (Result{Verdict: Soft, RetryAfter: tc.d}).RetryAfterSeconds(); int64(got) != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestRetryAfterSaturates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RefillPerSec = 1e-300
	l, _ := newTestLimiter(t, cfg)
	r := allowN(t, l, client, 11)
	if r.RetryAfter != math.MaxInt64 {
		t.Errorf("RetryAfter = %v, want saturated %v", r.RetryAfter, time.Duration(math.MaxInt64))
	}
}

// TestDebtFloor checks that debt stops at -HardFactor*Capacity: a client
// that hammers stays hard-limited while it does, and recovers within a
// bounded quiet time however long it hammered.
func TestDebtFloor(t *testing.T) {
	tests := []struct {
		name   string
		burst  int
		period time.Duration // between requests of the hammering phase
		rounds int
	}{
		{name: "one long burst", burst: 100000},
		{name: "twice the refill rate for an hour", burst: 40, period: 500 * time.Millisecond, rounds: 7200},
		{name: "exactly the refill rate", burst: 40, period: time.Second, rounds: 600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, DefaultConfig())
			if r := allowN(t, l, client, tc.burst); r.Verdict != Hard {
				t.Fatalf("after %d requests: %v, want hard", tc.burst, r.Verdict)
			}
			for i := range tc.rounds {
				clk.Advance(tc.period)
				if r := l.Allow(client); r.Verdict != Hard {
					t.Fatalf("hammering round %d: %v, want hard", i, r.Verdict)
				}
			}
			if e, _ := l.peek(client); e.tokens != -30 {
				t.Fatalf("balance %v, want the floor -30", e.tokens)
			}
			// From the floor, one token is 31 s away and a full bucket 40 s.
			clk.Advance(31*time.Second - time.Nanosecond)
			if e, _ := l.peek(client); l.b.balance(e, l.elapsed()) >= 1 {
				t.Errorf("holds a token before 31 s")
			}
			clk.Advance(time.Nanosecond)
			if e, _ := l.peek(client); l.b.balance(e, l.elapsed()) < 1 {
				t.Errorf("holds no token after 31 s")
			}
			clk.Advance(9*time.Second - time.Nanosecond)
			if n := l.Sweep(); n != 0 {
				t.Errorf("Sweep before 40 s dropped %d entries", n)
			}
			clk.Advance(time.Nanosecond)
			if n := l.Sweep(); n != 1 {
				t.Errorf("Sweep after 40 s dropped %d entries, want 1", n)
			}
		})
	}
}

func TestViolations(t *testing.T) {
	l, clk := newTestLimiter(t, DefaultConfig())
	other := netip.MustParseAddr("2001:db8::1")
	steps := []struct {
		name    string
		addr    netip.Addr
		n       int
		advance time.Duration // before the requests
		want    uint32        // Violations(addr) after
	}{
		{name: "unknown key", addr: client, n: 0, want: 0},
		{name: "burst within capacity", addr: client, n: 10, want: 0},
		{name: "soft counts", addr: client, n: 5, want: 5},
		{name: "other key independent", addr: other, n: 12, want: 2},
		{name: "hard counts too", addr: client, n: 40, want: 45},
		{name: "allowed after refill does not count", addr: client, n: 1, advance: 31 * time.Second, want: 45},
		{name: "refused again", addr: client, n: 2, want: 47},
		{name: "other key untouched", addr: other, n: 0, want: 2},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		var r Result
		for range st.n {
			r = l.Allow(st.addr)
		}
		if got := l.Violations(st.addr); got != st.want {
			t.Fatalf("%s: Violations = %d, want %d", st.name, got, st.want)
		}
		if st.n > 0 && r.Violations != st.want {
			t.Fatalf("%s: Result.Violations = %d, want %d", st.name, r.Violations, st.want)
		}
	}
}

func TestViolationsSaturate(t *testing.T) {
	l, _ := newTestLimiter(t, DefaultConfig())
	k := KeyOf(client, 32, 64)
	s := l.shardOf(k)
	s.insert(k, entry{tokens: -30, violations: math.MaxUint32 - 1}, &l.b, 0)
	allowN(t, l, client, 3)
	if got := l.Violations(client); got != math.MaxUint32 {
		t.Errorf("Violations = %d, want %d", got, uint32(math.MaxUint32))
	}
}

// TestClockSteps checks that time going backwards neither refills nor
// drains, and that going forward again refills only for new time.
func TestClockSteps(t *testing.T) {
	l, clk := newTestLimiter(t, DefaultConfig())
	allowN(t, l, client, 10)
	clk.Advance(-time.Hour)
	if r := l.Allow(client); r.Verdict != Soft || r.RetryAfter != 2*time.Second {
		t.Fatalf("after a backward step: %v %v, want soft 2s (no refill, no extra drain)", r.Verdict, r.RetryAfter)
	}
	clk.Advance(time.Hour) // back where it was: still no new time
	if r := l.Allow(client); r.Verdict != Soft || r.RetryAfter != 3*time.Second {
		t.Fatalf("back at the old time: %v %v, want soft 3s", r.Verdict, r.RetryAfter)
	}
	clk.Advance(3 * time.Second)
	if r := l.Allow(client); r.Verdict != Allow {
		t.Fatalf("3 s later: %v, want allow", r.Verdict)
	}
}

func TestVerdictString(t *testing.T) {
	tests := map[Verdict]string{Allow: "allow", Soft: "soft", Hard: "hard", 7: "verdict(7)"}
	for v, want := range tests {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", v, got, want)
		}
	}
}

func TestDefaultClock(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Now != nil {
		t.Fatal("DefaultConfig().Now is set; nil selects the fast monotonic clock")
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := l.Allow(client); r.Verdict != Allow {
		t.Errorf("first request: %v, want allow", r.Verdict)
	}
}
