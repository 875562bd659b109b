package gateway

import (
	"net/netip"
	"testing"
)

func TestAccessList(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name         string
		allow, deny  []netip.Prefix
		defaultAllow bool
		addr         string
		want         Reason
	}{
		{"default allow", nil, nil, true, "192.0.2.1", ReasonNone},
		{"default deny", nil, nil, false, "192.0.2.1", ReasonAccessDenied},
		{"denied /24", nil, pfx("203.0.113.0/24"), true, "203.0.113.200", ReasonAccessDenied},
		{"outside denied /24", nil, pfx("203.0.113.0/24"), true, "203.0.114.1", ReasonNone},
		{"allowed under default deny", pfx("10.0.0.0/8"), nil, false, "10.1.2.3", ReasonNone},
		{"not allowed under default deny", pfx("10.0.0.0/8"), nil, false, "11.1.2.3", ReasonAccessDenied},
		{"deny wins over allow", pfx("10.0.0.0/8"), pfx("10.9.0.0/16"), false, "10.9.1.1", ReasonAccessDenied},
		{"deny wins over a longer allow", pfx("10.9.1.0/24"), pfx("10.0.0.0/8"), true, "10.9.1.1", ReasonAccessDenied},
		{"mapped address matches IPv4 rule", nil, pfx("198.51.100.7/32"), true, "::ffff:198.51.100.7", ReasonAccessDenied},
		{"mapped rule matches IPv4 address", nil, pfx("::ffff:198.51.100.0/120"), true, "198.51.100.9", ReasonAccessDenied},
		{"IPv6 /48", nil, pfx("2001:db8:1::/48"), true, "2001:db8:1:ffff::1", ReasonAccessDenied},
		{"IPv6 outside /48", nil, pfx("2001:db8:1::/48"), true, "2001:db8:2::1", ReasonNone},
		{"IPv4 rule never matches IPv6", nil, pfx("0.0.0.0/0"), true, "2001:db8::1", ReasonNone},
		{"IPv6 rule never matches IPv4", nil, pfx("::/0"), true, "192.0.2.1", ReasonNone},
		{"unmasked rule", nil, pfx("192.0.2.77/24"), true, "192.0.2.1", ReasonAccessDenied},
		{"several lengths", nil, pfx("192.0.2.0/24", "198.51.0.0/16", "203.0.113.5/32"), true, "198.51.7.7", ReasonAccessDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccessList(tc.allow, tc.deny, tc.defaultAllow)
			if got := a.Check(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("Check(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
	var nilList *AccessList
	if nilList.Check(netip.MustParseAddr("192.0.2.1")) != ReasonNone {
		t.Fatal("a nil list refused")
	}
}

func TestAccessListDoesNotAllocate(t *testing.T) {
	a := NewAccessList(nil, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}, true)
	addr := netip.MustParseAddr("2001:db8::9")
	if n := testing.AllocsPerRun(100, func() { a.Check(addr) }); n != 0 {
		t.Fatalf("%v allocations per check", n)
	}
}

func BenchmarkAccessListCheck(b *testing.B) {
	var deny []netip.Prefix
	for i := 0; i < 1000; i++ {
		deny = append(deny, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	deny = append(deny, netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.0.2.7/32"))
	a := NewAccessList(nil, deny, true)
	addr := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		a.Check(addr)
	}
}
