package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The ban list of a large auto-ban storm: a million bans, three in four
// IPv4 /32s and one in four IPv6 /64s, plus an operator's /24 and /48 so
// each family has two prefix lengths to probe.
const (
	benchBans  = 1_000_000
	benchV4    = benchBans * 3 / 4
	benchStart = 0x0a000000 // 10.0.0.0: the v4 bans are 10.0.0.0 onwards
)

// benchBan returns the i-th ban of the storm (i < benchBans).
func benchBan(i int) Ban {
	if i < benchV4 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], benchStart+uint32(i))
		return Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32)}
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], 0x2001_0db8_0000_0000+uint64(i))
	return Ban{Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 64)}
}

var benchOperatorBans = []string{"198.51.100.0/24", "2001:db8:ffff::/48"}

func benchEvent(p netip.Prefix, at time.Time) Event {
	return Event{Version: SchemaVersion, Type: TypeBanAdded, Time: at,
		Ban: &BanData{Prefix: p, Until: at.Add(time.Hour), Reason: "rate_limit", Source: SourceAuto}}
}

// benchState returns a State holding the storm's million bans, folded
// from events as a node would (decoded strings and all).
func benchState(tb testing.TB) *State {
	tb.Helper()
	s := NewState()
	for i := range benchBans {
		if r := s.Apply(uint64(i+1), benchEvent(benchBan(i).Prefix, t0)); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	for i, p := range benchOperatorBans {
		e := benchEvent(netip.MustParsePrefix(p), t0)
		e.Ban.Source, e.Ban.Reason, e.Ban.Until = SourceOperator, "operator", time.Time{}
		if r := s.Apply(uint64(benchBans+i+1), e); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	return s
}

// BenchmarkBannedAt1M is the accept path's lookup in a view of a million
// bans. "hot" asks about one address over and over (its shard stays in
// the cache); "cold" cycles through 64Ki random addresses, so most probes
// miss the CPU caches, as a flood of distinct clients would.
func BenchmarkBannedAt1M(b *testing.B) {
	set := benchState(b).Bans().View(t0)
	rng := rand.New(rand.NewPCG(7, 7))
	const spread = 1 << 16
	kinds := []struct {
		name string
		addr func() netip.Addr
	}{
		{"hit-v4", func() netip.Addr { return benchBan(rng.IntN(benchV4)).Prefix.Addr() }},
		{"miss-v4", func() netip.Addr {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0x0b000000+rng.Uint32()%(1<<24)) // 11.0.0.0/8: no ban
			return netip.AddrFrom4(a)
		}},
		{"hit-v6", func() netip.Addr {
			a := benchBan(benchV4 + rng.IntN(benchBans-benchV4)).Prefix.Addr().As16()
			binary.BigEndian.PutUint64(a[8:], rng.Uint64())
			return netip.AddrFrom16(a)
		}},
		{"miss-v6", func() netip.Addr {
			var a [16]byte
			binary.BigEndian.PutUint64(a[:8], 0x2001_0db8_1000_0000+rng.Uint64()%(1<<28))
			binary.BigEndian.PutUint64(a[8:], rng.Uint64())
			return netip.AddrFrom16(a)
		}},
	}
	for _, k := range kinds {
		addrs := make([]netip.Addr, spread)
		for i := range addrs {
			addrs[i] = k.addr()
		}
		want := k.name[:3] == "hit"
		for _, a := range addrs[:64] {
			if set.Banned(a, t0) != want {
				b.Fatalf("%s: Banned(%s) = %v", k.name, a, !want)
			}
		}
		b.Run(k.name+"/hot", func(b *testing.B) {
			b.ReportAllocs()
			a := addrs[0]
			for b.Loop() {
				set.Banned(a, t0)
			}
		})
		b.Run(k.name+"/cold", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				set.Banned(addrs[i&(spread-1)], t0)
				i++
			}
		})
	}
}

// BenchmarkBanViewPublish is the view published after a batch of ban
// events at a million bans (BanState.View after the batch's events).
func BenchmarkBanViewPublish(b *testing.B) {
	st := benchState(b)
	bans := st.Bans()
	bans.View(t0)
	for _, batch := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			at, n := t0, 0
			for b.Loop() {
				at = at.Add(time.Millisecond)
				for range batch {
					var a [4]byte
					binary.BigEndian.PutUint32(a[:], 0xc0000000+uint32(n)) // 192.0.0.0 onwards
					n++
					if err := bans.Apply(BanEvent{Kind: BanAdded, Time: at, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32),
						Until: at.Add(time.Hour), Reason: "rate_limit", Source: SourceAuto}); err != nil {
						b.Fatal(err)
					}
				}
				bans.View(at)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkBanMemory reports the heap a million bans take: in the fold's
// state and in the published view, per ban.
func BenchmarkBanMemory(b *testing.B) {
	for b.Loop() {
		base := heapInUse()
		st := benchState(b)
		withState := heapInUse()
		v := st.Bans().View(t0)
		withView := heapInUse()
		n := float64(st.Bans().Len())
		b.ReportMetric(float64(withState-base)/n, "state-B/ban")
		b.ReportMetric(float64(withView-withState)/n, "view-B/ban")
		runtime.KeepAlive(v)
		runtime.KeepAlive(st)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSnapshotAt1M writes and reads back a snapshot of a state with a
// million bans.
func BenchmarkSnapshotAt1M(b *testing.B) {
	st := benchState(b)
	var buf bytes.Buffer
	if err := st.WriteSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	size := buf.Len()
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if err := st.WriteSnapshot(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size), "bytes")
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			got, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			if got.Bans().Len() != st.Bans().Len() {
				b.Fatalf("read %d bans of %d", got.Bans().Len(), st.Bans().Len())
			}
		}
		b.ReportMetric(float64(size), "bytes")
	})
}

// freezeBatch is the bans between two snapshots in BenchmarkFreezeAt1M:
// the default snapshot_threshold.
const freezeBatch = 8192

// BenchmarkFreezeAt1M is what a snapshot holds up Raft's applies for at a
// million bans: freezing the state after snapshot_threshold new bans (the
// whole write then runs in Persist, beside the applies).
func BenchmarkFreezeAt1M(b *testing.B) {
	st := benchState(b)
	st.Freeze() // the first freeze indexes every ban, as a node's first snapshot does
	next := uint64(benchBans + 10)
	var a [4]byte
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range freezeBatch {
			next++
			binary.BigEndian.PutUint32(a[:], 0x0b000000+uint32(next))
			st.Apply(next, benchEvent(netip.PrefixFrom(netip.AddrFrom4(a), 32), t0))
		}
		b.StartTimer()
		st.Freeze()
	}
}
