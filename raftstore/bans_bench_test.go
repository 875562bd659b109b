package raftstore

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// benchSet returns a set of n /32 IPv4 bans plus a /24 and an IPv6 /64, the
// shape of a list that auto-bans filled during a flood.
func benchSet(n int) *BanSet {
	bans := make([]Ban, 0, n+2)
	for i := range n {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		bans = append(bans, Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Until: t0.Add(time.Hour)})
	}
	bans = append(bans,
		Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		Ban{Prefix: netip.MustParsePrefix("2001:db8::/64"), Until: t0.Add(time.Hour)})
	return NewBanSet(bans)
}

// BenchmarkBanned is the ban lookup on the accept path.
func BenchmarkBanned(b *testing.B) {
	for _, n := range []int{0, 10, 10_000, 1_000_000} {
		set := benchSet(n)
		cases := map[string]netip.Addr{
			"miss-v4": netip.MustParseAddr("192.0.2.1"),
			"hit-v4":  netip.MustParseAddr("10.0.0.5"),
			"miss-v6": netip.MustParseAddr("2001:db8:1::1"),
		}
		if n == 0 {
			delete(cases, "hit-v4")
		}
		for name, a := range cases {
			b.Run(fmt.Sprintf("bans=%d/%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				now := t0
				for b.Loop() {
					set.Banned(a, now)
				}
			})
		}
	}
}

// BenchmarkBanSetBuild is the cost of indexing the whole list: the first
// view of a state, and the view after a snapshot is restored. (Later views
// copy only what changed: BenchmarkBanViewPublish.)
func BenchmarkBanSetBuild(b *testing.B) {
	for _, n := range []int{100, 10_000, 1_000_000} {
		s := NewBanState()
		for i := range n {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
			if err := s.Apply(BanEvent{Kind: BanAdded, Time: t0, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Until: t0.Add(time.Hour), Reason: "rate_limit", Source: "auto"}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("bans=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.view.set = nil
				s.View(t0)
			}
		})
	}
}

// BenchmarkBanStateApply is one event folded into a state holding 10,000
// bans: the fold must not scan them all (forgetting is due only rarely).
func BenchmarkBanStateApply(b *testing.B) {
	s := NewBanState()
	for i := range 10_000 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		if err := s.Apply(BanEvent{Kind: BanAdded, Time: t0, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Until: t0.Add(time.Hour), Reason: "rate_limit", Source: "auto"}); err != nil {
			b.Fatal(err)
		}
	}
	p := netip.MustParsePrefix("192.0.2.1/32")
	at := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		s.Apply(BanEvent{Kind: BanAdded, Time: at, Prefix: p, Until: at.Add(time.Hour), Reason: "rate_limit", Source: "auto"})
	}
}
