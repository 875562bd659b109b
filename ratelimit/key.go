package ratelimit

import (
	"encoding/binary"
	"net/netip"
)

// Key identifies one bucket: a client address reduced to its prefix. It is
// a fixed-size comparable value, so using it as a map key allocates nothing.
//
// The 128 bits hold the masked IPv6 address, or for IPv4 the masked address
// in its IPv4-mapped form (::ffff:a.b.c.d). Since IPv6 clients are unmapped
// before masking, no IPv6 key can take that form, and the two families never
// share a key.
type Key struct {
	hi, lo uint64
}

// invalidKey groups invalid (zero) addresses. It can only collide with
// ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128, a multicast address that is
// never a client's source.
var invalidKey = Key{hi: ^uint64(0), lo: ^uint64(0)}

const v4MappedPrefix = 0xffff << 32

// KeyOf reduces addr to its bucket key: IPv4-mapped IPv6 addresses are
// unmapped, then IPv4 addresses are masked to v4bits and IPv6 addresses to
// v6bits. The zone is dropped. Prefix lengths outside 0..32 and 0..128 are
// clamped. All invalid addresses share one key.
func KeyOf(addr netip.Addr, v4bits, v6bits int) Key {
	if !addr.IsValid() {
		return invalidKey
	}
	// As16 gives IPv4 addresses in their IPv4-mapped form, so IPv4 and
	// IPv4-mapped IPv6 addresses look alike from here on.
	a := addr.As16()
	hi := binary.BigEndian.Uint64(a[:8])
	lo := binary.BigEndian.Uint64(a[8:])
	switch {
	case hi == 0 && lo>>32 == 0xffff:
		return Key{lo: v4MappedPrefix | uint64(uint32(lo)&mask32(v4bits))}
	case v6bits <= 64:
		return Key{hi: hi & mask64(v6bits)}
	default:
		return Key{hi: hi, lo: lo & mask64(v6bits-64)}
	}
}

// mask32 returns the netmask of a prefix of bits (clamped to 0..32).
func mask32(bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	if bits >= 32 {
		return ^uint32(0)
	}
	return ^uint32(0) << (32 - bits)
}

// mask64 returns the netmask of a prefix of bits (clamped to 0..64).
func mask64(bits int) uint64 {
	if bits <= 0 {
		return 0
	}
	if bits >= 64 {
		return ^uint64(0)
	}
	return ^uint64(0) << (64 - bits)
}

// Addr returns the key's masked address: an IPv4 address for IPv4 keys,
// an IPv6 address otherwise, and the zero Addr for the key of invalid
// addresses.
func (k Key) Addr() netip.Addr {
	if k == invalidKey {
		return netip.Addr{}
	}
	if k.hi == 0 && k.lo>>32 == 0xffff {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(k.lo))
		return netip.AddrFrom4(a)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.hi)
	binary.BigEndian.PutUint64(a[8:], k.lo)
	return netip.AddrFrom16(a)
}

// String returns the key's masked address, or "invalid".
func (k Key) String() string {
	if k == invalidKey {
		return "invalid"
	}
	return k.Addr().String()
}

// shardHash mixes the key with a per-limiter seed, so that clients cannot
// aim their addresses at one shard without knowing the seed.
func (k Key) shardHash(seed uint64) uint64 {
	h := (k.hi ^ seed) * 0x9e3779b97f4a7c15
	h ^= k.lo + seed>>7
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
