package raftstore

import (
	"encoding/binary"
	"math"
	"math/bits"
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
// path: one hash probe per distinct prefix length in use (typically one or
// two), no lock, no allocation. The zero value and nil are empty sets.
// It implements gateway.BanView.
//
// A set is a persistent (copy-on-write) hash table: the bans of each
// address family are spread by a hash of their prefix over banShards
// small open-addressing tables, under banPages pages. A changed set
// (BanState.View after a batch of events) copies only the pages and
// shards the batch touched and shares the rest with the set before it,
// so publishing costs about (touched shards × bans/banShards), however
// long the list: some microseconds per event at a million bans, where
// rebuilding the whole index took 1.8 ms at ten thousand. A lookup reads
// the page (small enough to stay in the CPU cache) and then one run of
// slots in one array. See docs/performance.md.
type BanSet struct {
	v4, v6 banFamily
	n      int // bans held
}

// Shape of a BanSet's index: 16384 shards per family, under 128 pages.
// At a million bans a shard holds about sixty (a copy of one is a few
// kilobytes), and a page (7 KiB) and the set itself (2 KiB) are cheap to
// copy per publish.
const (
	banPageBits  = 7
	banShardBits = 14
	banPageSize  = 1 << banPageBits
	banPages     = 1 << (banShardBits - banPageBits)
	banShards    = 1 << banShardBits
)

// banFamily indexes the bans of one address family.
type banFamily struct {
	pages [banPages]*banPage
	lens  []uint8     // distinct prefix lengths in use, longest first
	count *[129]int32 // bans per prefix length; nil when none
}

type banPage [banPageSize]banShard

// banShard is an open-addressing hash table with linear probing: slots
// is empty or a power of two long and at most half used (live and
// deleted slots), so a probe ends at an empty slot after a few. What a
// lookup does not need is kept apart, in infos.
type banShard struct {
	slots []banSlot
	infos []banInfo // infos[slot.info] describes a live slot
	n     int32     // live slots
	used  int32     // live and deleted slots
}

// banSlot is a masked prefix (the address as two big-endian words, an
// IPv4 address in the low 32 bits of lo) and its ban's end: 32 bytes, two
// to a cache line, no pointer for the collector to scan.
type banSlot struct {
	hi, lo uint64
	until  int64 // unix nanoseconds; noEnd: until lifted
	info   int32
	tag    uint8 // slotEmpty, slotDeleted, or the prefix length + 1
}

const (
	slotEmpty   = 0
	slotDeleted = 0xff
)

// banInfo is what a set keeps of a ban for listing.
type banInfo struct {
	since   int64 // unix nanoseconds; noTime: the zero time
	strikes int
	reason  string
	source  string
}

// banKey is a masked prefix, as a slot holds it.
type banKey struct {
	hi, lo uint64
	bits   uint8
}

const (
	noEnd  = math.MaxInt64 // banSlot.until of a ban until lifted
	noTime = math.MinInt64 // banInfo.since of a zero time
)

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
// BanState holds them. Each shard is sized for its bans before it is
// filled.
func newBanSet(bans []Ban) *BanSet {
	var sizes [2][banShards]int32
	for _, b := range bans {
		sizes[familyIndex(b.Prefix.Addr().Is4())][keyOf(b.Prefix).hash()>>(64-banShardBits)]++
	}
	e := (*BanSet)(nil).edit()
	for fi := range sizes {
		f := e.s.family(fi == 0)
		for i, n := range sizes[fi] {
			if n == 0 {
				continue
			}
			p := f.pages[i>>banPageBits]
			if p == nil {
				p = new(banPage)
				f.pages[i>>banPageBits] = p
				testAndSet(e.pages[fi][:], i>>banPageBits)
			}
			p[i&(banPageSize-1)] = newShard(int(n))
			testAndSet(e.copied[fi][:], i)
		}
	}
	for _, b := range bans {
		e.put(b)
	}
	return e.done()
}

func (s *BanSet) family(is4 bool) *banFamily {
	if is4 {
		return &s.v4
	}
	return &s.v6
}

// Banned reports whether addr falls in a ban that is active at now.
// IPv4-mapped IPv6 addresses are unmapped first, so a banned IPv4 client
// is refused on a dual-stack socket too.
func (s *BanSet) Banned(addr netip.Addr, now time.Time) bool {
	if s == nil || s.n == 0 || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap() // the key below has no zone
	t := now.UnixNano()
	if addr.Is4() {
		a := addr.As4()
		u := uint64(binary.BigEndian.Uint32(a[:]))
		for _, l := range s.v4.lens {
			k := banKey{lo: u & (math.MaxUint32 << (32 - l)) & math.MaxUint32, bits: l}
			if until, ok := s.v4.until(k); ok && t < until {
				return true
			}
		}
		return false
	}
	a := addr.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	for _, l := range s.v6.lens {
		k := banKey{hi: hi, bits: l}
		if l <= 64 {
			k.hi &= math.MaxUint64 << (64 - l)
		} else {
			k.lo = lo & (math.MaxUint64 << (128 - l))
		}
		if until, ok := s.v6.until(k); ok && t < until {
			return true
		}
	}
	return false
}

// until returns the end of k's ban, if the family holds one.
func (f *banFamily) until(k banKey) (int64, bool) {
	h := k.hash()
	i := h >> (64 - banShardBits)
	p := f.pages[i>>banPageBits]
	if p == nil {
		return 0, false
	}
	slots := p[i&(banPageSize-1)].slots
	if len(slots) == 0 {
		return 0, false
	}
	mask := uint64(len(slots) - 1)
	tag := k.bits + 1
	for j := h & mask; ; j = (j + 1) & mask {
		s := &slots[j]
		if s.tag == tag && s.hi == k.hi && s.lo == k.lo {
			return s.until, true
		}
		if s.tag == slotEmpty {
			return 0, false
		}
	}
}

// Len returns how many bans the set holds. A set from BanState.View may
// still hold bans that ended after it was built (Banned checks their end;
// Bans lists them with it).
func (s *BanSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Active returns how many of the set's bans are active at now (a ban
// until lifted always is), walking the set without allocating.
func (s *BanSet) Active(now time.Time) int {
	if s == nil || s.n == 0 {
		return 0
	}
	t, n := now.UnixNano(), 0
	for _, f := range []*banFamily{&s.v4, &s.v6} {
		for _, p := range f.pages {
			if p == nil {
				continue
			}
			for si := range p {
				for _, sl := range p[si].slots {
					if sl.tag != slotEmpty && sl.tag != slotDeleted && t < sl.until {
						n++
					}
				}
			}
		}
	}
	return n
}

// Bans returns the bans, sorted by prefix. The caller may modify the
// returned slice. Sorting happens here, for listing, rather than when the
// set is built on the path that publishes bans.
func (s *BanSet) Bans() []Ban {
	if s == nil {
		return nil
	}
	out := make([]Ban, 0, s.n)
	for fi, f := range []*banFamily{&s.v4, &s.v6} {
		for _, p := range f.pages {
			if p == nil {
				continue
			}
			for si := range p {
				sh := &p[si]
				for _, sl := range sh.slots {
					if sl.tag != slotEmpty && sl.tag != slotDeleted {
						out = append(out, ban(sl, sh.infos[sl.info], fi == 0))
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.Prefix.Compare(b.Prefix) })
	return out
}

// newShard returns an empty shard with room for n bans.
func newShard(n int) banShard {
	c := 4
	for c < 2*n {
		c <<= 1
	}
	return banShard{slots: make([]banSlot, c), infos: make([]banInfo, 0, n)}
}

// rebuilt returns a fresh copy of sh with room for room more bans: the
// deleted slots and their infos are left behind.
func (sh *banShard) rebuilt(room int) banShard {
	out := newShard(int(sh.n) + room)
	mask := uint64(len(out.slots) - 1)
	for _, sl := range sh.slots {
		if sl.tag == slotEmpty || sl.tag == slotDeleted {
			continue
		}
		out.infos = append(out.infos, sh.infos[sl.info])
		sl.info = int32(len(out.infos) - 1)
		j := sl.key().hash() & mask
		for out.slots[j].tag != slotEmpty {
			j = (j + 1) & mask
		}
		out.slots[j] = sl
		out.n++
		out.used++
	}
	return out
}

// find returns k's slot and true, or the slot to put k in and false.
func (sh *banShard) find(k banKey, h uint64) (int, bool) {
	mask := uint64(len(sh.slots) - 1)
	tag := k.bits + 1
	free := -1
	for j := h & mask; ; j = (j + 1) & mask {
		s := &sh.slots[j]
		switch {
		case s.tag == tag && s.hi == k.hi && s.lo == k.lo:
			return int(j), true
		case s.tag == slotDeleted:
			if free < 0 {
				free = int(j)
			}
		case s.tag == slotEmpty:
			if free < 0 {
				free = int(j)
			}
			return free, false
		}
	}
}

// banSetEdit makes a new set from an old one: it copies a page or a shard
// the first time the edit changes it and shares every other with the old
// set, which stays as it was.
type banSetEdit struct {
	s      *BanSet
	copied [2][banShards / 64]uint64       // per family: shards copied, a bit each
	pages  [2][(banPages + 63) / 64]uint64 // per family: pages copied
	lens   [2]bool                         // per family: a length came into or went out of use
	counts [2]bool                         // per family: count copied
}

// edit starts a new set from s (nil: empty).
func (s *BanSet) edit() *banSetEdit {
	e := &banSetEdit{s: &BanSet{}}
	if s != nil {
		*e.s = *s
	}
	return e
}

// put adds or replaces b, whose prefix is normalised.
func (e *banSetEdit) put(b Ban) {
	k, is4 := keyOf(b.Prefix), b.Prefix.Addr().Is4()
	h := k.hash()
	sh := e.shard(h, is4)
	if len(sh.slots) == 0 || 2*(int(sh.used)+1) > len(sh.slots) {
		*sh = sh.rebuilt(max(1, int(sh.n)))
	}
	j, found := sh.find(k, h)
	info := infoOf(b)
	slot := &sh.slots[j]
	if found {
		slot.until = untilOf(b)
		sh.infos[slot.info] = info
		return
	}
	if slot.tag == slotEmpty {
		sh.used++
	}
	sh.infos = append(sh.infos, info)
	*slot = banSlot{hi: k.hi, lo: k.lo, until: untilOf(b), info: int32(len(sh.infos) - 1), tag: k.bits + 1}
	sh.n++
	e.s.n++
	e.count(k.bits, is4, 1)
}

// del removes p's ban, if the set holds one.
func (e *banSetEdit) del(p netip.Prefix) {
	k, is4 := keyOf(p), p.Addr().Is4()
	if _, ok := e.s.family(is4).until(k); !ok {
		return
	}
	h := k.hash()
	sh := e.shard(h, is4)
	j, _ := sh.find(k, h)
	sh.infos[sh.slots[j].info] = banInfo{} // drop the strings
	sh.slots[j].tag = slotDeleted
	sh.n--
	if sh.n == 0 {
		*sh = banShard{}
	}
	e.s.n--
	e.count(k.bits, is4, -1)
}

// shard returns the new set's shard for hash h, copied on the edit's
// first change to it (and its page on the first change to the page). A
// copy keeps the deleted slots; put rebuilds a shard without them when
// they and the live ones fill half of it.
func (e *banSetEdit) shard(h uint64, is4 bool) *banShard {
	fi := familyIndex(is4)
	f := e.s.family(is4)
	i := int(h >> (64 - banShardBits))
	pi := i >> banPageBits
	if !testAndSet(e.pages[fi][:], pi) {
		p := new(banPage)
		if old := f.pages[pi]; old != nil {
			*p = *old
		}
		f.pages[pi] = p
	}
	sh := &f.pages[pi][i&(banPageSize-1)]
	if !testAndSet(e.copied[fi][:], i) && len(sh.slots) > 0 {
		*sh = banShard{slots: slices.Clone(sh.slots), infos: slices.Grow(slices.Clone(sh.infos), 1), n: sh.n, used: sh.used}
	}
	return sh
}

// count moves the number of bans of length l by d.
func (e *banSetEdit) count(l uint8, is4 bool, d int32) {
	fi := familyIndex(is4)
	f := e.s.family(is4)
	if !e.counts[fi] {
		c := new([129]int32)
		if f.count != nil {
			*c = *f.count
		}
		f.count = c
		e.counts[fi] = true
	}
	before := f.count[l]
	f.count[l] += d
	if (before == 0) != (f.count[l] == 0) {
		e.lens[fi] = true
	}
}

// done returns the new set. The edit must not be used afterwards.
func (e *banSetEdit) done() *BanSet {
	if e.lens[0] {
		e.s.v4.sortLens()
	}
	if e.lens[1] {
		e.s.v6.sortLens()
	}
	return e.s
}

func familyIndex(is4 bool) int {
	if is4 {
		return 0
	}
	return 1
}

// testAndSet sets bit i of w and reports whether it was set already.
func testAndSet(w []uint64, i int) bool {
	bit := uint64(1) << (i % 64)
	was := w[i/64]&bit != 0
	w[i/64] |= bit
	return was
}

// sortLens lists the lengths in use, longest first, in a new slice.
func (f *banFamily) sortLens() {
	var lens []uint8
	if f.count != nil {
		for l := 128; l >= 0; l-- {
			if f.count[l] > 0 {
				lens = append(lens, uint8(l))
			}
		}
	}
	f.lens = lens
}

// keyOf returns the key of a normalised prefix.
func keyOf(p netip.Prefix) banKey {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		return banKey{lo: uint64(binary.BigEndian.Uint32(b[:])), bits: uint8(p.Bits())}
	}
	b := a.As16()
	return banKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: uint8(p.Bits())}
}

func (sl banSlot) key() banKey { return banKey{hi: sl.hi, lo: sl.lo, bits: sl.tag - 1} }

// hash mixes k's words (multiply-xorshift), so that neighbouring /32s and
// /64s spread evenly: the top banShardBits bits pick the shard, the low
// bits the first slot to probe.
func (k banKey) hash() uint64 {
	h := k.hi ^ bits.RotateLeft64(k.lo, 29) ^ uint64(k.bits)<<56
	h *= 0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return h
}

// prefix returns the prefix k stands for in family is4.
func (k banKey) prefix(is4 bool) netip.Prefix {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

func untilOf(b Ban) int64 {
	if b.Until.IsZero() {
		return noEnd
	}
	return nanos(b.Until)
}

func infoOf(b Ban) banInfo {
	i := banInfo{since: noTime, strikes: b.Strikes, reason: b.Reason, source: b.Source}
	if !b.Since.IsZero() {
		i.since = nanos(b.Since)
	}
	return i
}

func ban(sl banSlot, info banInfo, is4 bool) Ban {
	b := Ban{Prefix: sl.key().prefix(is4), Reason: info.reason, Source: info.source, Strikes: info.strikes}
	if sl.until != noEnd {
		b.Until = time.Unix(0, sl.until).UTC()
	}
	if info.since != noTime {
		b.Since = time.Unix(0, info.since).UTC()
	}
	return b
}

// nanos is t in unix nanoseconds, clamped to what an int64 holds (years
// 1678 to 2262) and short of the sentinels.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, noTime+1)):
		return noTime + 1
	case t.After(time.Unix(0, noEnd-1)):
		return noEnd - 1
	}
	return t.UnixNano()
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
