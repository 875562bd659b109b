package ratelimit

import (
	"net/netip"
	"testing"
)

// FuzzKeyOf checks KeyOf against the standard library's prefix masking:
// the key's address is the unmapped address masked to its family's prefix,
// KeyOf is idempotent, and an IPv4-mapped address keys like its IPv4 form.
func FuzzKeyOf(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint8(32), uint8(64), "")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7}, uint8(24), uint8(64), "")
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(32), uint8(56), "eth0")
	f.Add([]byte{}, uint8(0), uint8(200), "")
	f.Fuzz(func(t *testing.T, raw []byte, v4bits, v6bits uint8, zone string) {
		addr, ok := netip.AddrFromSlice(raw)
		if ok && addr.Is6() {
			addr = addr.WithZone(zone)
		}
		b4, b6 := int(v4bits)%40-4, int(v6bits)%140-6 // include out-of-range lengths
		k := KeyOf(addr, b4, b6)
		if !addr.IsValid() {
			if k != invalidKey || k.Addr().IsValid() {
				t.Fatalf("invalid address keyed as %v", k)
			}
			return
		}
		plain := addr.Unmap().WithZone("")
		bits := min(max(b6, 0), 128)
		if plain.Is4() {
			bits = min(max(b4, 0), 32)
		}
		want, err := plain.Prefix(bits)
		if err != nil {
			t.Fatalf("Prefix(%d): %v", bits, err)
		}
		if k.Addr() != want.Addr() && k != invalidKey {
			t.Fatalf("KeyOf(%v, %d, %d).Addr() = %v, want %v", addr, b4, b6, k.Addr(), want.Addr())
		}
		if KeyOf(k.Addr(), b4, b6) != k {
			t.Fatalf("KeyOf not idempotent for %v", addr)
		}
		if plain.Is4() && KeyOf(netip.AddrFrom16(plain.As16()), b4, b6) != k {
			t.Fatalf("IPv4-mapped form of %v keys differently", addr)
		}
		if k == invalidKey && plain != netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") {
			t.Fatalf("valid address %v got the invalid key", addr) // only that multicast address may
		}
	})
}
