package ratelimit

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

// fuzzAddr picks one of a small pool of addresses, so that sequences revisit
// keys: IPv4, IPv4-mapped, IPv6 sharing or not sharing a /64, a zoned
// address and the invalid address.
func fuzzAddr(b byte) netip.Addr {
	i := b % 64
	switch b % 5 {
	case 0:
		return netip.AddrFrom4([4]byte{192, 0, 2, i})
	case 1:
		return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: i})
	case 2:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: i % 8, 15: i})
	case 3:
		return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: i}).WithZone("eth0")
	default:
		if i%4 == 0 {
			return netip.Addr{}
		}
		return netip.AddrFrom4([4]byte{10, i, 0, 1})
	}
}

// FuzzAllow drives a limiter built from fuzzed parameters through a fuzzed
// sequence of requests, clock steps (forward and backward) and sweeps, and
// checks the invariants after every step:
//   - the verdict matches the bucket's balance and zones;
//   - RetryAfter > 0 exactly when the verdict is not Allow, and it is the
//     least time after which the bucket holds a token;
//   - the balance stays within [-HardFactor*Capacity, Capacity];
//   - violations grow by one on refusal and stay on Allow, and start
//     afresh when the bucket was full;
//   - Len() <= MaxKeys, the requested key is tracked, a sweep leaves no
//     full bucket.
func FuzzAllow(f *testing.F) {
	f.Add(uint8(10), uint16(1000), uint8(32), uint8(32), uint8(64), uint8(255), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(1), uint16(1), uint8(0), uint8(24), uint8(48), uint8(3), []byte{1, 200, 2, 0, 3, 1, 4, 0xff, 5, 7})
	f.Add(uint8(2), uint16(65535), uint8(200), uint8(1), uint8(128), uint8(0), []byte{9, 255, 9, 254, 9, 0, 0xff, 0})
	f.Fuzz(func(t *testing.T, capacity uint8, refillMilli uint16, hardSixteenths uint8, v4bits, v6bits, maxKeys uint8, ops []byte) {
		cfg := Config{
			Capacity:     1 + float64(capacity)/8,
			RefillPerSec: (1 + float64(refillMilli)) / 1000,
			HardFactor:   1 + float64(hardSixteenths)/16,
			IPv4Prefix:   1 + int(v4bits)%32,
			IPv6Prefix:   1 + int(v6bits)%128,
			MaxKeys:      1 + int(maxKeys)%150,
		}
		l, clk := newTestLimiter(t, cfg)
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			switch {
			case op == 0xff:
				l.Sweep()
				checkNoFullBucket(t, l)
				continue
			case op == 0xfe:
				clk.Advance(-time.Duration(arg) * time.Second) // clock steps back
				continue
			}
			clk.Advance(time.Duration(arg) * time.Duration(arg) * time.Millisecond)
			addr := fuzzAddr(op)
			before, had := l.peek(addr)
			wasFull := had && l.b.full(before, l.elapsed())
			r := l.Allow(addr)
			e, ok := l.peek(addr)
			if !ok {
				t.Fatalf("%v not tracked right after Allow", addr)
			}
			checkResult(t, l, cfg, r, e)
			wantViolations := uint32(0)
			if had && !wasFull {
				wantViolations = before.violations
			}
			if r.Verdict != Allow && wantViolations < math.MaxUint32 {
				wantViolations++
			}
			if r.Violations != wantViolations || l.Violations(addr) != wantViolations {
				t.Fatalf("violations %d (Violations() %d), want %d", r.Violations, l.Violations(addr), wantViolations)
			}
			if n := l.Len(); n > cfg.MaxKeys {
				t.Fatalf("Len() = %d > MaxKeys %d", n, cfg.MaxKeys)
			}
			checkShards(t, l)
		}
	})
}

func checkResult(t *testing.T, l *Limiter, cfg Config, r Result, e entry) {
	t.Helper()
	if e.tokens > cfg.Capacity || e.tokens < -cfg.HardFactor*cfg.Capacity {
		t.Fatalf("balance %v outside [%v, %v]", e.tokens, -cfg.HardFactor*cfg.Capacity, cfg.Capacity)
	}
	want := Hard
	switch {
	case e.tokens >= 0:
		want = Allow
	case e.tokens >= -(cfg.HardFactor-1)*cfg.Capacity:
		want = Soft
	}
	if r.Verdict != want {
		t.Fatalf("verdict %v with balance %v, want %v", r.Verdict, e.tokens, want)
	}
	if (r.RetryAfter > 0) != (r.Verdict != Allow) || r.RetryAfter < 0 {
		t.Fatalf("verdict %v with RetryAfter %v", r.Verdict, r.RetryAfter)
	}
	if r.Verdict == Allow {
		if r.RetryAfterSeconds() != 0 {
			t.Fatalf("allow with RetryAfterSeconds %d", r.RetryAfterSeconds())
		}
		return
	}
	if r.RetryAfterSeconds() < 1 || time.Duration(r.RetryAfterSeconds())*time.Second < r.RetryAfter {
		t.Fatalf("RetryAfterSeconds %d for %v", r.RetryAfterSeconds(), r.RetryAfter)
	}
	d := int64(r.RetryAfter)
	if d < 1<<53 {
		if l.b.refilled(e.tokens, d) < 1 || (d > 1 && l.b.refilled(e.tokens, d-1) >= 1) {
			t.Fatalf("RetryAfter %v is not the least wait for one token from %v", r.RetryAfter, e.tokens)
		}
	}
}

func checkNoFullBucket(t *testing.T, l *Limiter) {
	t.Helper()
	now := l.elapsed()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, i := range s.index {
			if l.b.full(s.entries[i], now) {
				s.mu.Unlock()
				t.Fatalf("full bucket %v survived Sweep", k)
			}
		}
		s.mu.Unlock()
	}
}
