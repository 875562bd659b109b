package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

// drain empties addr's bucket into the Hard zone.
func drain(t *testing.T, l *Limiter, addr netip.Addr) {
	t.Helper()
	for range 100 {
		if l.Allow(addr).Verdict == Hard {
			return
		}
	}
	t.Fatalf("%v never reached the hard limit", addr)
}

// Lifting a ban forgets the rate-limit state of every client inside the
// banned prefix, and of no other, whatever the prefix's width against the
// limiter's keys.
func TestResetPrefix(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.7"),
		netip.MustParseAddr("192.0.2.8"),
		netip.MustParseAddr("198.51.100.7"),
		netip.MustParseAddr("2001:db8:1:2::1"),
		netip.MustParseAddr("2001:db8:1:3::1"),
	}
	tests := []struct {
		name   string
		prefix string
		reset  []int // indexes into addrs
	}{
		{"one key", "192.0.2.7/32", []int{0}},
		{"inside a key", "2001:db8:1:2::1/128", []int{3}},
		{"a /24 over /32 keys", "192.0.2.0/24", []int{0, 1}},
		{"a /48 over /64 keys", "2001:db8:1::/48", []int{3, 4}},
		{"IPv4-mapped", "::ffff:192.0.2.0/120", []int{0, 1}},
		{"unmasked", "192.0.2.7/24", []int{0, 1}},
		{"no key inside", "203.0.113.0/24", nil},
		{"invalid", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestLimiter(t, Config{Capacity: 2, RefillPerSec: 0.001, HardFactor: 2, IPv4Prefix: 32, IPv6Prefix: 64, MaxKeys: 1000})
			for _, a := range addrs {
				drain(t, l, a)
			}
			var p netip.Prefix
			if tt.prefix != "" {
				p = netip.MustParsePrefix(tt.prefix)
			}
			if got := l.ResetPrefix(p); got != len(tt.reset) {
				t.Errorf("ResetPrefix(%s) = %d, want %d", p, got, len(tt.reset))
			}
			for i, a := range addrs {
				reset := false
				for _, j := range tt.reset {
					reset = reset || i == j
				}
				r := l.Allow(a)
				switch {
				case reset && (r.Verdict != Allow || r.Violations != 0):
					t.Errorf("%v after the reset: %v with %d violations, want a fresh allow", a, r.Verdict, r.Violations)
				case !reset && (r.Verdict != Hard || r.Violations == 0):
					t.Errorf("%v outside the prefix: %v with %d violations, want still hard", a, r.Verdict, r.Violations)
				}
			}
			checkShards(t, l)
		})
	}
}

// A bucket that has refilled to full starts its violation count afresh
// even when no sweep has dropped it: the count is of verdicts since the
// bucket was last full.
func TestViolationsRestartWhenFull(t *testing.T) {
	l, clk := newTestLimiter(t, Config{Capacity: 2, RefillPerSec: 1, HardFactor: 2, IPv4Prefix: 32, IPv6Prefix: 64, MaxKeys: 1000})
	a := netip.MustParseAddr("192.0.2.7")
	drain(t, l, a)
	clk.Advance(3 * time.Second) // from -4 (the floor) to -1: still in debt
	if r := l.Allow(a); r.Verdict == Allow || r.Violations < 2 {
		t.Fatalf("in debt: %v with %d violations, want a refusal that counts on", r.Verdict, r.Violations)
	}
	clk.Advance(time.Hour)
	if r := l.Allow(a); r.Verdict != Allow || r.Violations != 0 {
		t.Fatalf("after refilling: %v with %d violations, want a fresh allow", r.Verdict, r.Violations)
	}
}
