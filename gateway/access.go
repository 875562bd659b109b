package gateway

import (
	"net/netip"
	"slices"
)

// AccessList is the static allow/deny layer applied at accept, before any
// TLS handshake. A deny match always wins; then an allow match admits; an
// address on neither list gets the default policy. IPv4-mapped IPv6
// addresses are unmapped before matching, so "::ffff:192.0.2.1" is
// "192.0.2.1". An AccessList is immutable and safe for concurrent use.
type AccessList struct {
	allow, deny  prefixSet
	defaultAllow bool
}

// NewAccessList builds an AccessList. Prefixes are masked and IPv4-mapped
// prefixes unmapped.
func NewAccessList(allow, deny []netip.Prefix, defaultAllow bool) *AccessList {
	return &AccessList{allow: newPrefixSet(allow), deny: newPrefixSet(deny), defaultAllow: defaultAllow}
}

// Check returns ReasonNone when addr may connect and ReasonAccessDenied
// otherwise. A nil AccessList admits everything.
func (a *AccessList) Check(addr netip.Addr) Reason {
	if a == nil {
		return ReasonNone
	}
	addr = addr.Unmap()
	if a.deny.contains(addr) {
		return ReasonAccessDenied
	}
	if a.allow.contains(addr) || a.defaultAllow {
		return ReasonNone
	}
	return ReasonAccessDenied
}

// prefixSet answers "is addr inside any of these prefixes" with one map
// probe per distinct prefix length, so a long list costs no more than a
// handful of lengths.
type prefixSet struct {
	v4bits, v6bits []int // distinct lengths, longest first
	set            map[netip.Prefix]struct{}
}

func newPrefixSet(ps []netip.Prefix) prefixSet {
	s := prefixSet{set: make(map[netip.Prefix]struct{}, len(ps))}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		addr, bits := p.Addr(), p.Bits()
		if addr.Is4In6() {
			addr = addr.Unmap()
			bits -= 96
			if bits < 0 {
				bits = 0
			}
		}
		p = netip.PrefixFrom(addr, bits).Masked()
		s.set[p] = struct{}{}
		if addr.Is4() {
			s.v4bits = appendUnique(s.v4bits, bits)
		} else {
			s.v6bits = appendUnique(s.v6bits, bits)
		}
	}
	slices.SortFunc(s.v4bits, func(a, b int) int { return b - a })
	slices.SortFunc(s.v6bits, func(a, b int) int { return b - a })
	return s
}

func appendUnique(xs []int, x int) []int {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

func (s *prefixSet) contains(addr netip.Addr) bool {
	if len(s.set) == 0 {
		return false
	}
	bits := s.v6bits
	if addr.Is4() {
		bits = s.v4bits
	}
	for _, b := range bits {
		p, err := addr.Prefix(b)
		if err != nil {
			continue
		}
		if _, ok := s.set[p]; ok {
			return true
		}
	}
	return false
}
