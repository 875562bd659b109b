package raftstore

import (
	"net/netip"
	"slices"
	"time"
)

// Ban is one entry of the ban list: every address inside Prefix is refused
// at accept, before any TLS handshake, until Until.
type Ban struct {
	Prefix  netip.Prefix // masked, never IPv4-mapped IPv6
	Since   time.Time    // when the ban was added (the event's time)
	Until   time.Time    // when it ends; the zero time: until lifted
	Reason  string       // short token, e.g. "rate_limit" or "operator"
	Source  string       // who asked: "auto" or "operator"
	Strikes int          // how many bans this prefix has earned in a row (1 for a first)
}

// ActiveAt reports whether b refuses clients at t.
func (b Ban) ActiveAt(t time.Time) bool {
	return b.Until.IsZero() || t.Before(b.Until)
}

// BanSet is an immutable set of bans, indexed for lookup on the accept
// path: one map probe per distinct prefix length in use (typically one or
// two), no lock, no allocation. The zero value and nil are empty sets.
// It implements gateway.BanView.
type BanSet struct {
	byPrefix map[netip.Prefix]int64 // until, unix nanoseconds; 0: until lifted
	v4Lens   []int                  // distinct IPv4 prefix lengths, longest first
	v6Lens   []int
	bans     []Ban // in no order; Bans sorts them
}

// NewBanSet returns a set of bans. Bans for the same prefix collapse to
// the one that ends last.
func NewBanSet(bans []Ban) *BanSet {
	keep := make(map[netip.Prefix]Ban, len(bans))
	for _, b := range bans {
		p := normalizePrefix(b.Prefix)
		if !p.IsValid() {
			continue
		}
		b.Prefix = p
		if old, ok := keep[p]; ok && !endsLater(b, old) {
			continue
		}
		keep[p] = b
	}
	unique := make([]Ban, 0, len(keep))
	for _, b := range keep {
		unique = append(unique, b)
	}
	return newBanSet(unique)
}

// newBanSet indexes bans whose prefixes are normalised and distinct, as a
// BanState holds them.
func newBanSet(bans []Ban) *BanSet {
	s := &BanSet{byPrefix: make(map[netip.Prefix]int64, len(bans)), bans: bans}
	for _, b := range bans {
		var until int64
		if !b.Until.IsZero() {
			until = b.Until.UnixNano()
		}
		s.byPrefix[b.Prefix] = until
		if b.Prefix.Addr().Is4() {
			s.v4Lens = appendLen(s.v4Lens, b.Prefix.Bits())
		} else {
			s.v6Lens = appendLen(s.v6Lens, b.Prefix.Bits())
		}
	}
	slices.SortFunc(s.v4Lens, func(a, b int) int { return b - a })
	slices.SortFunc(s.v6Lens, func(a, b int) int { return b - a })
	return s
}

// Banned reports whether addr falls in a ban that is active at now.
// IPv4-mapped IPv6 addresses are unmapped first, so a banned IPv4 client
// is refused on a dual-stack socket too.
func (s *BanSet) Banned(addr netip.Addr, now time.Time) bool {
	if s == nil || len(s.byPrefix) == 0 || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap() // Addr.Prefix below drops any zone
	lens := s.v6Lens
	if addr.Is4() {
		lens = s.v4Lens
	}
	t := now.UnixNano()
	for _, l := range lens {
		p, err := addr.Prefix(l)
		if err != nil {
			continue
		}
		if until, ok := s.byPrefix[p]; ok && (until == 0 || t < until) {
			return true
		}
	}
	return false
}

// Len returns how many bans the set holds, expired ones included.
func (s *BanSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.bans)
}

// Bans returns the bans, sorted by prefix. The caller may modify the
// returned slice. Sorting happens here, for listing, rather than when the
// set is built on the path that publishes bans.
func (s *BanSet) Bans() []Ban {
	if s == nil {
		return nil
	}
	out := slices.Clone(s.bans)
	slices.SortFunc(out, func(a, b Ban) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// normalizePrefix unmaps IPv4-mapped prefixes (::ffff:a.b.c.d/120 becomes
// a.b.c.d/24), drops zones and masks the address. It returns the zero
// Prefix for an invalid one.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	a, bits := p.Addr(), p.Bits() // Masked drops any zone
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func endsLater(a, b Ban) bool {
	switch {
	case a.Until.IsZero():
		return true
	case b.Until.IsZero():
		return false
	}
	return a.Until.After(b.Until)
}

func appendLen(lens []int, l int) []int {
	if slices.Contains(lens, l) {
		return lens
	}
	return append(lens, l)
}
