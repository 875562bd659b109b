package raftstore

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func added(p string, at, until time.Time) BanEvent {
	return BanEvent{Kind: BanAdded, Time: at, Prefix: netip.MustParsePrefix(p), Until: until, Reason: "rate_limit", Source: "auto"}
}

func lifted(p string, at time.Time) BanEvent {
	return BanEvent{Kind: BanLifted, Time: at, Prefix: netip.MustParsePrefix(p)}
}

func TestBanStateApply(t *testing.T) {
	s := NewBanState()
	a := netip.MustParseAddr("192.0.2.7")
	mustApply(t, s, added("192.0.2.7/32", t0, t0.Add(10*time.Minute)))
	if !s.View(t0).Banned(a, t0) {
		t.Fatal("added ban not in the view")
	}
	if got := s.Strikes(netip.MustParsePrefix("192.0.2.7/32")); got != 1 {
		t.Fatalf("strikes after one ban = %d, want 1", got)
	}

	mustApply(t, s, lifted("192.0.2.7/32", t0.Add(time.Minute)))
	if s.View(t0.Add(time.Minute)).Banned(a, t0.Add(time.Minute)) {
		t.Fatal("lifted ban still in the view")
	}
	if got := s.Strikes(netip.MustParsePrefix("192.0.2.7/32")); got != 1 {
		t.Fatalf("a lifted ban is remembered for strikes: got %d, want 1", got)
	}

	// Banned again within StrikeMemory: a second strike.
	mustApply(t, s, added("192.0.2.7/32", t0.Add(2*time.Hour), t0.Add(3*time.Hour)))
	if got := s.Strikes(netip.MustParsePrefix("192.0.2.7/32")); got != 2 {
		t.Fatalf("strikes after a second ban = %d, want 2", got)
	}

	// Any event StrikeMemory after the end forgets it.
	mustApply(t, s, added("198.51.100.0/24", t0.Add(3*time.Hour+StrikeMemory), time.Time{}))
	if _, ok := s.Lookup(netip.MustParsePrefix("192.0.2.7/32")); ok {
		t.Fatal("a ban ended StrikeMemory ago must be forgotten")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestBanStateLiftUnknownIsNoop(t *testing.T) {
	s := NewBanState()
	mustApply(t, s, lifted("192.0.2.7/32", t0))
	if s.Len() != 0 {
		t.Fatalf("lifting an unknown ban created one: %d", s.Len())
	}
}

func TestBanStateRejectsInvalidEvents(t *testing.T) {
	tests := []struct {
		name string
		ev   BanEvent
	}{
		{"unknown kind", BanEvent{Kind: 9, Time: t0, Prefix: netip.MustParsePrefix("192.0.2.1/32")}},
		{"no time", added("192.0.2.1/32", time.Time{}, t0)},
		{"no prefix", BanEvent{Kind: BanLifted, Time: t0}},
		{"mapped prefix shorter than 96", BanEvent{Kind: BanLifted, Time: t0, Prefix: netip.MustParsePrefix("::ffff:0.0.0.0/80")}},
		{"until before time", added("192.0.2.1/32", t0, t0.Add(-time.Second))},
		{"until equal to time", added("192.0.2.1/32", t0, t0)},
		{"empty reason", func() BanEvent { e := added("192.0.2.1/32", t0, time.Time{}); e.Reason = ""; return e }()},
		{"reason with a newline", func() BanEvent { e := added("192.0.2.1/32", t0, time.Time{}); e.Reason = "x\ny"; return e }()},
		{"upper-case source", func() BanEvent { e := added("192.0.2.1/32", t0, time.Time{}); e.Source = "Auto"; return e }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewBanState()
			mustApply(t, s, added("203.0.113.0/24", t0.Add(-time.Hour), time.Time{}))
			before := s.View(t0).Bans()
			err := s.Apply(tt.ev)
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Apply = %v, want ErrInvalidEvent", err)
			}
			if after := s.View(t0).Bans(); !reflect.DeepEqual(before, after) {
				t.Fatalf("an invalid event changed the state: %+v → %+v", before, after)
			}
		})
	}
}

// The fold is deterministic: the same events give the same state, and the
// view depends only on the events and the time asked about.
func TestBanStateReplayIsDeterministic(t *testing.T) {
	evs := []BanEvent{
		added("192.0.2.7/32", t0, t0.Add(10*time.Minute)),
		added("2001:db8::/64", t0.Add(time.Second), time.Time{}),
		lifted("192.0.2.7/32", t0.Add(2*time.Second)),
		added("192.0.2.7/32", t0.Add(3*time.Second), t0.Add(time.Hour)),
		added("198.51.100.0/24", t0.Add(4*time.Second), t0.Add(time.Minute)),
	}
	a, b := NewBanState(), NewBanState()
	for _, e := range evs {
		mustApply(t, a, e)
		mustApply(t, b, e)
	}
	at := t0.Add(5 * time.Second)
	if va, vb := a.View(at).Bans(), b.View(at).Bans(); !reflect.DeepEqual(va, vb) || len(va) != 3 {
		t.Fatalf("replays differ or miss bans:\n%+v\n%+v", va, vb)
	}
	if got := a.Strikes(netip.MustParsePrefix("192.0.2.7/32")); got != 2 {
		t.Fatalf("strikes = %d, want 2", got)
	}
}

func mustApply(t *testing.T, s *BanState, e BanEvent) {
	t.Helper()
	if err := s.Apply(e); err != nil {
		t.Fatalf("Apply(%s %s): %v", e.Kind, e.Prefix, err)
	}
}
