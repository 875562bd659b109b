package ratelimit

import (
	"net/netip"
	"testing"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name           string
		a, b           string
		v4bits, v6bits int
		same           bool
		wantKey        string // KeyOf(a).String()
	}{
		{name: "ipv4 /32 distinct", a: "192.0.2.1", b: "192.0.2.2", v4bits: 32, v6bits: 64, wantKey: "192.0.2.1"},
		{name: "ipv4 /24 grouped", a: "192.0.2.1", b: "192.0.2.200", v4bits: 24, v6bits: 64, same: true, wantKey: "192.0.2.0"},
		{name: "ipv4 /24 other net", a: "192.0.2.1", b: "192.0.3.1", v4bits: 24, v6bits: 64, wantKey: "192.0.2.0"},
		{name: "ipv4 /1", a: "100.1.2.3", b: "1.2.3.4", v4bits: 1, v6bits: 64, same: true, wantKey: "0.0.0.0"},
		{name: "ipv6 same /64", a: "2001:db8:1:2::1", b: "2001:db8:1:2:ffff:ffff:ffff:ffff", v4bits: 32, v6bits: 64, same: true, wantKey: "2001:db8:1:2::"},
		{name: "ipv6 different /64", a: "2001:db8:1:2::1", b: "2001:db8:1:3::1", v4bits: 32, v6bits: 64, wantKey: "2001:db8:1:2::"},
		{name: "ipv6 /48 grouped", a: "2001:db8:1:2::1", b: "2001:db8:1:ff::1", v4bits: 32, v6bits: 48, same: true, wantKey: "2001:db8:1::"},
		{name: "ipv6 /128 distinct", a: "2001:db8::1", b: "2001:db8::2", v4bits: 32, v6bits: 128, wantKey: "2001:db8::1"},
		{name: "ipv6 /96 grouped", a: "2001:db8::1:1", b: "2001:db8::1:2", v4bits: 32, v6bits: 96, same: true, wantKey: "2001:db8::"},
		{name: "ipv6 /65 splits low half", a: "2001:db8::1", b: "2001:db8::8000:0:0:1", v4bits: 32, v6bits: 65, wantKey: "2001:db8::"},
		{name: "mapped equals ipv4", a: "::ffff:192.0.2.1", b: "192.0.2.1", v4bits: 32, v6bits: 64, same: true, wantKey: "192.0.2.1"},
		{name: "mapped uses ipv4 prefix", a: "::ffff:192.0.2.1", b: "192.0.2.9", v4bits: 24, v6bits: 128, same: true, wantKey: "192.0.2.0"},
		{name: "mapped not grouped by ipv6 /64", a: "::ffff:192.0.2.1", b: "::ffff:198.51.100.1", v4bits: 32, v6bits: 64, wantKey: "192.0.2.1"},
		{name: "ipv4 never equals ipv6 /96", a: "192.0.2.1", b: "::192.0.2.1", v4bits: 32, v6bits: 128, wantKey: "192.0.2.1"},
		{name: "zone dropped", a: "fe80::1%eth0", b: "fe80::2%eth1", v4bits: 32, v6bits: 64, same: true, wantKey: "fe80::"},
		{name: "loopbacks differ by family", a: "127.0.0.1", b: "::1", v4bits: 32, v6bits: 64, wantKey: "127.0.0.1"},
		{name: "invalid grouped", a: "", b: "", v4bits: 32, v6bits: 64, same: true, wantKey: "invalid"},
		{name: "invalid is not ::", a: "", b: "::", v4bits: 32, v6bits: 128, wantKey: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := parseOrZero(t, tc.a), parseOrZero(t, tc.b)
			ka, kb := KeyOf(a, tc.v4bits, tc.v6bits), KeyOf(b, tc.v4bits, tc.v6bits)
			if (ka == kb) != tc.same {
				t.Errorf("KeyOf(%s) = %v, KeyOf(%s) = %v, same = %v, want %v", a, ka, b, kb, ka == kb, tc.same)
			}
			if got := ka.String(); got != tc.wantKey {
				t.Errorf("KeyOf(%s).String() = %q, want %q", a, got, tc.wantKey)
			}
			if ka != invalidKey && KeyOf(ka.Addr(), tc.v4bits, tc.v6bits) != ka {
				t.Errorf("KeyOf(KeyOf(%s).Addr()) != KeyOf(%s)", a, a)
			}
		})
	}
}

func parseOrZero(t *testing.T, s string) netip.Addr {
	t.Helper()
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func TestKeyOfClampsPrefix(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("2001:db8::1")
	if KeyOf(a, 99, 64) != KeyOf(a, 32, 64) || KeyOf(a, -1, 64) != KeyOf(a, 0, 64) {
		t.Error("IPv4 prefix not clamped to 0..32")
	}
	if KeyOf(b, 32, 999) != KeyOf(b, 32, 128) || KeyOf(b, 32, -5) != KeyOf(b, 32, 0) {
		t.Error("IPv6 prefix not clamped to 0..128")
	}
}

func TestLimiterGroupsByPrefix(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{name: "one ipv6 /64 shares a bucket", a: "2001:db8:0:1::1", b: "2001:db8:0:1:abcd::2", same: true},
		{name: "different ipv6 /64s do not", a: "2001:db8:0:1::1", b: "2001:db8:0:2::1"},
		{name: "ipv4-mapped shares the ipv4 bucket", a: "::ffff:203.0.113.7", b: "203.0.113.7", same: true},
		{name: "ipv4 /32s do not share", a: "203.0.113.7", b: "203.0.113.8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newTestLimiter(t, DefaultConfig())
			allowN(t, l, netip.MustParseAddr(tc.a), 10) // empty a's bucket
			r := l.Allow(netip.MustParseAddr(tc.b))
			if shared := r.Verdict != Allow; shared != tc.same {
				t.Errorf("after emptying %s, Allow(%s) = %v; shared bucket = %v, want %v", tc.a, tc.b, r.Verdict, shared, tc.same)
			}
			wantLen := 2
			if tc.same {
				wantLen = 1
			}
			if l.Len() != wantLen {
				t.Errorf("Len() = %d, want %d", l.Len(), wantLen)
			}
		})
	}
}
