package ratelimit

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestMaxKeysUnderRotation rotates through ten times MaxKeys addresses and
// checks that the table never exceeds the cap.
func TestMaxKeysUnderRotation(t *testing.T) {
	tests := []struct {
		name    string
		maxKeys int
		addr    func(uint32) netip.Addr
		step    time.Duration
	}{
		{name: "one key", maxKeys: 1, addr: v4, step: time.Millisecond},
		{name: "one shard ipv4", maxKeys: 8, addr: v4},
		{name: "one shard ipv6", maxKeys: 100, addr: v6, step: time.Millisecond},
		{name: "several shards ipv4", maxKeys: 1000, addr: v4},
		{name: "many shards ipv6", maxKeys: 5000, addr: v6, step: time.Microsecond},
		{name: "all shards", maxKeys: 1 << 14, addr: v4, step: time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxKeys = tc.maxKeys
			l, clk := newTestLimiter(t, cfg)
			total := uint32(10 * tc.maxKeys)
			for i := range total {
				clk.Advance(tc.step)
				if r := l.Allow(tc.addr(i)); r.Verdict != Allow {
					t.Fatalf("new key %d: %v, want allow", i, r.Verdict)
				}
				if i%97 == 0 {
					if n := l.Len(); n > tc.maxKeys {
						t.Fatalf("after %d keys: Len() = %d > MaxKeys %d", i+1, n, tc.maxKeys)
					}
				}
			}
			if n := l.Len(); n > tc.maxKeys || n == 0 {
				t.Fatalf("Len() = %d, want 1..%d", n, tc.maxKeys)
			}
			checkShards(t, l)
		})
	}
}

// TestEvictFullFirst checks the eviction order deterministically: with
// MaxKeys 8 the table is one shard of 8 entries, which the sample of 8
// covers entirely. A full bucket goes first even when it is not the least
// recently seen; without one, the least recently seen entry goes.
func TestEvictFullFirst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxKeys = 8
	l, clk := newTestLimiter(t, cfg)
	abuser := netip.MustParseAddr("203.0.113.66")
	quiet := netip.MustParseAddr("203.0.113.1")

	// t=0: the abuser goes hard (balance -30, full again only at 40 s).
	allowN(t, l, abuser, 40)
	// t=1ms: quiet takes one token; full again at 1.001 s.
	clk.Advance(time.Millisecond)
	l.Allow(quiet)
	// t=2s: six more keys take one token each; full again at 3 s.
	clk.Advance(2 * time.Second)
	for i := range uint32(6) {
		l.Allow(v6(i))
	}
	if l.Len() != 8 {
		t.Fatalf("Len() = %d, want 8", l.Len())
	}

	steps := []struct {
		name    string
		newKey  netip.Addr
		evicted netip.Addr
	}{
		// Pure LRU would evict the abuser (seen at t=0); the full bucket
		// of quiet (seen at 1ms, full since 1.001 s) goes instead.
		{name: "full bucket before least recent", newKey: v6(100), evicted: quiet},
		// No bucket is full now: the least recently seen goes.
		{name: "least recent without full buckets", newKey: v6(101), evicted: abuser},
	}
	for _, st := range steps {
		l.Allow(st.newKey)
		if _, ok := l.peek(st.evicted); ok {
			t.Fatalf("%s: %v still tracked", st.name, st.evicted)
		}
		if _, ok := l.peek(st.newKey); !ok {
			t.Fatalf("%s: new key %v not tracked", st.name, st.newKey)
		}
		if l.Len() != 8 {
			t.Fatalf("%s: Len() = %d, want 8", st.name, l.Len())
		}
	}
}

// TestActiveAbuserSurvivesRotation has an attacker insert a fresh address
// before every request of an abusive client. The abuser, seen most
// recently, must never be evicted: its violation count grows by one on
// every request. In one shard covered by the sample this is deterministic;
// across shards of 128 entries it holds because the abuser is never the
// oldest of a sample of 8 distinct entries.
func TestActiveAbuserSurvivesRotation(t *testing.T) {
	tests := []struct {
		name    string
		maxKeys int
	}{
		{name: "one shard of 8", maxKeys: 8},
		{name: "one shard of 100", maxKeys: 100},
		{name: "32 shards of 128", maxKeys: 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxKeys = tc.maxKeys
			l, clk := newTestLimiter(t, cfg)
			abuser := netip.MustParseAddr("2001:db8:bad::1")
			allowN(t, l, abuser, 30)
			want := l.Violations(abuser)
			for i := range uint32(10 * tc.maxKeys) {
				clk.Advance(time.Millisecond)
				l.Allow(v4(i))
				r := l.Allow(abuser)
				want++
				if r.Violations != want || r.Verdict != Hard {
					t.Fatalf("after %d attacker keys: abuser %v with %d violations, want hard with %d (evicted?)",
						i+1, r.Verdict, r.Violations, want)
				}
			}
		})
	}
}

func TestSweep(t *testing.T) {
	l, clk := newTestLimiter(t, DefaultConfig())
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	c := netip.MustParseAddr("2001:db8::1")
	allowN(t, l, a, 1)  // full at 1 s
	allowN(t, l, b, 10) // full at 10 s
	allowN(t, l, c, 35) // balance -25, full at 35 s
	steps := []struct {
		advance     time.Duration
		wantDropped int
		wantLen     int
	}{
		{advance: 0, wantDropped: 0, wantLen: 3},
		{advance: time.Second - time.Nanosecond, wantDropped: 0, wantLen: 3},
		{advance: time.Nanosecond, wantDropped: 1, wantLen: 2},
		{advance: 9 * time.Second, wantDropped: 1, wantLen: 1},
		{advance: 24 * time.Second, wantDropped: 0, wantLen: 1},
		{advance: time.Second, wantDropped: 1, wantLen: 0},
		{advance: time.Hour, wantDropped: 0, wantLen: 0},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		if got := l.Sweep(); got != st.wantDropped {
			t.Errorf("step %d: Sweep() = %d, want %d", i, got, st.wantDropped)
		}
		if got := l.Len(); got != st.wantLen {
			t.Errorf("step %d: Len() = %d, want %d", i, got, st.wantLen)
		}
	}
	if r := l.Allow(c); r.Verdict != Allow || r.Violations != 0 {
		t.Errorf("after sweep: %v with %d violations, want a fresh allow", r.Verdict, r.Violations)
	}
}

// TestSweepShrinks checks that a swept shard gives the memory of a burst of
// keys back by rebuilding its map. MaxKeys 127 makes one shard.
func TestSweepShrinks(t *testing.T) {
	tests := []struct {
		name        string
		keys        uint32
		wantRebuilt bool
	}{
		{name: "burst above shrinkMin", keys: 126, wantRebuilt: true},
		{name: "small table kept", keys: shrinkMin - 2, wantRebuilt: false}, // peak 63 with keep
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxKeys = 127
			l, clk := newTestLimiter(t, cfg)
			for i := range tc.keys {
				l.Allow(v4(i))
			}
			keep := netip.MustParseAddr("192.0.2.99")
			allowN(t, l, keep, 20) // still in debt after the sweep below
			clk.Advance(5 * time.Second)
			before := reflect.ValueOf(l.shards[0].index).UnsafePointer()
			if got, want := l.Sweep(), int(tc.keys); got != want {
				t.Fatalf("Sweep() = %d, want %d", got, want)
			}
			rebuilt := reflect.ValueOf(l.shards[0].index).UnsafePointer() != before
			if rebuilt != tc.wantRebuilt {
				t.Errorf("map rebuilt = %v, want %v", rebuilt, tc.wantRebuilt)
			}
			checkShards(t, l)
			if rebuilt && (cap(l.shards[0].entries) != 1 || len(l.shards[0].free) != 0) {
				t.Errorf("rebuilt slab has cap %d and %d free positions, want 1 and 0", cap(l.shards[0].entries), len(l.shards[0].free))
			}
			if v := l.Violations(keep); v != 10 || l.Len() != 1 {
				t.Errorf("kept key has %d violations, Len() = %d, want 10 and 1", v, l.Len())
			}
		})
	}
}
