package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injected clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestLimiter returns a limiter for cfg driven by a fake clock.
func newTestLimiter(t testing.TB, cfg Config) (*Limiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	cfg.Now = clk.Now
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l, clk
}

// peek returns addr's entry without touching it.
func (l *Limiter) peek(addr netip.Addr) (entry, bool) {
	k := KeyOf(addr, l.v4bits, l.v6bits)
	s := l.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(k); e != nil {
		return *e, true
	}
	return entry{}, false
}

// checkShards fails unless every shard's index, slab and free list agree
// and stay within the shard's limit.
func checkShards(t testing.TB, l *Limiter) {
	t.Helper()
	for n := range l.shards {
		s := &l.shards[n]
		s.mu.Lock()
		err := s.check()
		s.mu.Unlock()
		if err != "" {
			t.Fatalf("shard %d: %s", n, err)
		}
	}
}

// check returns what is wrong with s, or "". The caller holds s.mu.
func (s *shardState) check() string {
	switch {
	case len(s.index) > s.limit:
		return fmt.Sprintf("%d keys > limit %d", len(s.index), s.limit)
	case len(s.entries) > s.limit:
		return fmt.Sprintf("%d slab entries > limit %d", len(s.entries), s.limit)
	case len(s.index)+len(s.free) != len(s.entries):
		return fmt.Sprintf("%d keys + %d free != %d slab entries", len(s.index), len(s.free), len(s.entries))
	}
	used := make(map[int32]bool, len(s.entries))
	for _, i := range s.index {
		used[i] = true
	}
	for _, i := range s.free {
		if used[i] {
			return fmt.Sprintf("position %d both used and free", i)
		}
		used[i] = true
	}
	if len(used) != len(s.entries) {
		return fmt.Sprintf("%d distinct positions for %d slab entries", len(used), len(s.entries))
	}
	return ""
}

// allowN calls Allow n times and returns the last result.
func allowN(t testing.TB, l *Limiter, addr netip.Addr, n int) Result {
	t.Helper()
	var r Result
	for range n {
		r = l.Allow(addr)
	}
	return r
}

// v4 returns the i-th address of 10.0.0.0/8 and beyond.
func v4(i uint32) netip.Addr {
	i += 10 << 24
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// v6 returns an address in the i-th /64 of 2001:db8::/32.
func v6(i uint32) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
}
