package raftstore

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestBanSetBanned(t *testing.T) {
	set := NewBanSet([]Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Until: t0.Add(time.Minute)},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, // until lifted
		{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64"), Until: t0.Add(time.Hour)},
		{Prefix: netip.MustParsePrefix("::ffff:203.0.113.0/120"), Until: t0.Add(time.Hour)}, // mapped: 203.0.113.0/24
		{Prefix: netip.MustParsePrefix("192.0.2.99/32"), Until: t0.Add(-time.Second)},       // ended
		{}, // invalid: skipped
	})
	tests := []struct {
		name string
		addr string
		at   time.Time
		want bool
	}{
		{"exact v4", "192.0.2.7", t0, true},
		{"neighbour of exact v4", "192.0.2.8", t0, false},
		{"v4 after its end", "192.0.2.7", t0.Add(time.Minute), false},
		{"v4 just before its end", "192.0.2.7", t0.Add(time.Minute - time.Nanosecond), true},
		{"inside a /24 until lifted", "198.51.100.200", t0.Add(1000 * time.Hour), true},
		{"v4-mapped client of a v4 ban", "::ffff:198.51.100.1", t0, true},
		{"v4-mapped ban prefix unmapped", "203.0.113.9", t0, true},
		{"inside the v6 /64", "2001:db8:1:2:aaaa::1", t0, true},
		{"v6 with a zone", "2001:db8:1:2::1%eth0", t0, true},
		{"next v6 /64", "2001:db8:1:3::1", t0, false},
		{"ended ban", "192.0.2.99", t0, false},
		{"invalid address", "", t0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			if got := set.Banned(a, tt.at); got != tt.want {
				t.Errorf("Banned(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if set.Len() != 5 {
		t.Errorf("Len = %d, want 5 (the invalid prefix is dropped)", set.Len())
	}
}

func TestBanSetCollapsesToLatestEnd(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.0/24")
	set := NewBanSet([]Ban{
		{Prefix: p, Until: t0.Add(time.Hour), Reason: "long"},
		{Prefix: netip.MustParsePrefix("192.0.2.77/24"), Until: t0.Add(time.Minute), Reason: "short"}, // same prefix once masked
	})
	bans := set.Bans()
	if len(bans) != 1 || bans[0].Reason != "long" || bans[0].Prefix != p {
		t.Fatalf("Bans() = %+v, want the one ban ending last", bans)
	}
	if !set.Banned(netip.MustParseAddr("192.0.2.1"), t0.Add(30*time.Minute)) {
		t.Error("the longer ban must hold after the shorter one ends")
	}
	forever := NewBanSet([]Ban{{Prefix: p}, {Prefix: p, Until: t0.Add(time.Hour)}})
	if b := forever.Bans(); len(b) != 1 || !b[0].Until.IsZero() {
		t.Fatalf("a ban until lifted must win over one that ends: %+v", b)
	}
}

func TestBanSetEmpty(t *testing.T) {
	var nilSet *BanSet
	for name, s := range map[string]*BanSet{"nil": nilSet, "zero": {}, "none": NewBanSet(nil)} {
		if s.Banned(netip.MustParseAddr("192.0.2.1"), t0) || s.Len() != 0 || len(s.Bans()) != 0 {
			t.Errorf("%s set is not empty", name)
		}
	}
}

func TestBanSetSorted(t *testing.T) {
	set := NewBanSet([]Ban{
		{Prefix: netip.MustParsePrefix("2001:db8::/64")},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32")},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24")},
	})
	var got []string
	for _, b := range set.Bans() {
		got = append(got, b.Prefix.String())
	}
	want := []string{"192.0.2.0/24", "192.0.2.9/32", "2001:db8::/64"}
	if len(got) != len(want) {
		t.Fatalf("Bans() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Bans() = %v, want %v", got, want)
		}
	}
}
