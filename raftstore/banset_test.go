package raftstore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"
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
	for _, c := range []struct {
		at   time.Time
		want int
	}{{t0, 4}, {t0.Add(time.Minute), 3}, {t0.Add(time.Hour), 1}, {t0.Add(-time.Hour), 5}} {
		if got := set.Active(c.at); got != c.want {
			t.Errorf("Active(%s) = %d, want %d", c.at.Sub(t0), got, c.want)
		}
	}
	var nilSet *BanSet
	if nilSet.Active(t0) != 0 {
		t.Error("a nil set has active bans")
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

func TestBanSetEdgePrefixes(t *testing.T) {
	set := NewBanSet([]Ban{
		{Prefix: netip.MustParsePrefix("::/96")},      // hi and lo words zero, like an IPv4 key
		{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, // same low bits as ::a00:0/104
		{Prefix: netip.MustParsePrefix("2001:db8::1/128")},
		{Prefix: netip.MustParsePrefix("2001:db8:ffff::/33")},
	})
	tests := []struct {
		addr string
		want bool
	}{
		{"::1", true},
		{"0.0.0.1", false}, // an IPv4 address is not in ::/96
		{"10.255.0.1", true},
		{"::a00:1", true}, // in ::/96, not because of 10.0.0.0/8
		{"::1:a00:1", false},
		{"2001:db8::1", true},
		{"2001:db8::2", false},
		{"2001:db8:8000::1", true},
		{"2001:db8:7fff::1", false},
	}
	for _, tt := range tests {
		if got := set.Banned(netip.MustParseAddr(tt.addr), t0); got != tt.want {
			t.Errorf("Banned(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	var got []string
	for _, b := range set.Bans() {
		got = append(got, b.Prefix.String())
	}
	if want := "[10.0.0.0/8 ::/96 2001:db8::1/128 2001:db8:8000::/33]"; fmt.Sprint(got) != want {
		t.Errorf("Bans() = %v, want %s", got, want)
	}
	all := NewBanSet([]Ban{{Prefix: netip.MustParsePrefix("0.0.0.0/0")}, {Prefix: netip.MustParsePrefix("::/0")}})
	for _, a := range []string{"192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"} {
		if !all.Banned(netip.MustParseAddr(a), t0) {
			t.Errorf("%s passes a /0 ban", a)
		}
	}
}

func TestBanSetKeepsTimes(t *testing.T) {
	since := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	in := []Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Since: since, Until: since.Add(time.Hour), Reason: "r", Source: "auto", Strikes: 3},
		{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Until: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}, // past int64 nanoseconds
	}
	got := NewBanSet(in).Bans()
	if !reflect.DeepEqual(got[0], in[0]) {
		t.Errorf("Bans()[0] = %+v, want %+v", got[0], in[0])
	}
	if got[1].Until.IsZero() || !got[1].Since.IsZero() {
		t.Errorf("Bans()[1] = %+v: a far end must stay an end, a zero start zero", got[1])
	}
	if !NewBanSet(in).Banned(netip.MustParseAddr("192.0.2.2"), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("a ban ending after 2262 must hold before then")
	}
}

// Views taken after each batch of events (incremental: copy on write) must
// agree with a view indexed afresh, and an earlier view must not change.
func TestBanStateViewsMatchAFreshIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var universe []netip.Prefix
	for i := range 40 {
		universe = append(universe,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32),
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i)}), 64),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, byte(i), 15: 1}), 128))
	}
	s := NewBanState()
	now := t0
	type taken struct {
		view *BanSet
		at   time.Time
		want []Ban
	}
	var views []taken
	for batch := range 300 {
		for range rng.IntN(20) {
			now = now.Add(time.Duration(rng.IntN(int(time.Hour))))
			p := universe[rng.IntN(len(universe))]
			e := lifted(p.String(), now)
			if rng.IntN(3) > 0 {
				var until time.Time
				if rng.IntN(4) > 0 {
					until = now.Add(time.Duration(1 + rng.IntN(int(3*time.Hour))))
				}
				e = added(p.String(), now, until)
			}
			mustApply(t, s, e)
		}
		v := s.View(now)
		fresh := freshView(s, now)
		checkSame(t, batch, v, fresh, universe, now)
		views = append(views, taken{v, now, fresh.Bans()})
	}
	for i, tk := range views {
		if got := active(tk.view.Bans(), tk.at); !reflect.DeepEqual(got, tk.want) {
			t.Fatalf("view %d changed after later edits:\n%+v\n%+v", i, got, tk.want)
		}
	}
}

func freshView(s *BanState, now time.Time) *BanSet {
	var bans []Ban
	for _, b := range s.bans {
		if b.ActiveAt(now) {
			bans = append(bans, b)
		}
	}
	return newBanSet(bans)
}

func checkSame(t *testing.T, batch int, got, want *BanSet, universe []netip.Prefix, now time.Time) {
	t.Helper()
	for _, at := range []time.Time{now, now.Add(time.Hour), now.Add(4 * time.Hour)} {
		for _, p := range universe {
			for _, a := range []netip.Addr{p.Addr(), p.Addr().Next()} {
				if g, w := got.Banned(a, at), want.Banned(a, at); g != w {
					t.Fatalf("batch %d: Banned(%s, +%v) = %v, a fresh view says %v", batch, a, at.Sub(now), g, w)
				}
			}
		}
	}
	if g, w := active(got.Bans(), now), want.Bans(); !reflect.DeepEqual(g, w) {
		t.Fatalf("batch %d: Bans() differ:\n%+v\n%+v", batch, g, w)
	}
}

func active(bans []Ban, at time.Time) []Ban {
	out := bans[:0:0]
	for _, b := range bans {
		if b.ActiveAt(at) {
			out = append(out, b)
		}
	}
	return out
}

// A view after one event shares all but one page and one shard with the
// view before it: publishing costs the change, not the list.
func TestBanStateViewCopiesOnlyWhatChanged(t *testing.T) {
	s := NewBanState()
	for i := range 100_000 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		mustApply(t, s, added(netip.PrefixFrom(netip.AddrFrom4(a), 32).String(), t0, t0.Add(time.Hour)))
	}
	before := s.View(t0)
	mustApply(t, s, added("192.0.2.1/32", t0.Add(time.Second), t0.Add(time.Hour)))
	after := s.View(t0.Add(time.Second))
	if before.Banned(netip.MustParseAddr("192.0.2.1"), t0) || !after.Banned(netip.MustParseAddr("192.0.2.1"), t0) {
		t.Fatal("the new ban must be in the new view only")
	}
	if after.Len() != before.Len()+1 {
		t.Fatalf("Len %d after %d", after.Len(), before.Len())
	}
	pages, shards := 0, 0
	for i := range before.v4.pages {
		if before.v4.pages[i] != after.v4.pages[i] {
			pages++
			for j := range before.v4.pages[i] {
				if unsafe.SliceData(before.v4.pages[i][j].slots) != unsafe.SliceData(after.v4.pages[i][j].slots) {
					shards++
				}
			}
		}
	}
	if pages != 1 || shards != 1 {
		t.Fatalf("one event copied %d pages and %d shards, want 1 and 1", pages, shards)
	}
}

// Many bans per shard: puts, replacements and deletions (tombstones,
// reuse, growth) in edits, against a plain map; earlier sets stay as
// they were.
func TestBanSetEditsAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const universe = 200_000
	prefix := func(i int) netip.Prefix {
		if i%4 == 3 {
			var a [16]byte
			binary.BigEndian.PutUint64(a[:8], 0x2001_0db8_0000_0000+uint64(i))
			return netip.PrefixFrom(netip.AddrFrom16(a), 64)
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		return netip.PrefixFrom(netip.AddrFrom4(a), 32)
	}
	want := map[netip.Prefix]Ban{}
	var set *BanSet
	type past struct {
		set  *BanSet
		want map[netip.Prefix]Ban
	}
	var pasts []past
	for round := range 40 {
		e := set.edit()
		for range 1 + rng.IntN(20_000) {
			p := prefix(rng.IntN(universe))
			if rng.IntN(3) == 0 {
				e.del(p)
				delete(want, p)
				continue
			}
			b := Ban{Prefix: p, Since: t0, Until: t0.Add(time.Duration(1+rng.IntN(1000)) * time.Minute), Reason: "r", Source: "auto", Strikes: rng.IntN(5)}
			e.put(b)
			want[p] = b
		}
		set = e.done()
		if set.Len() != len(want) {
			t.Fatalf("round %d: Len %d, want %d", round, set.Len(), len(want))
		}
		if round%8 == 0 {
			pasts = append(pasts, past{set, maps.Clone(want)})
		}
	}
	pasts = append(pasts, past{set, want})
	for i, p := range pasts {
		got := p.set.Bans()
		if len(got) != len(p.want) {
			t.Fatalf("set %d: %d bans, want %d", i, len(got), len(p.want))
		}
		for _, b := range got {
			if w := p.want[b.Prefix]; !reflect.DeepEqual(b, w) {
				t.Fatalf("set %d: %+v, want %+v", i, b, w)
			}
		}
		for j := range universe {
			pf := prefix(j)
			if _, w := p.want[pf]; p.set.Banned(pf.Addr(), t0) != w {
				t.Fatalf("set %d: Banned(%s) = %v", i, pf.Addr(), !w)
			}
		}
	}
}
