package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/raft"
)

var benchT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// BenchmarkFSMApplyAt1M folds batches of ban events into a state of a
// million bans through the FSM, as Raft hands them over, including the
// decoding of each entry and the publishing of the ban view after each
// batch: ns/op is one batch, the time from Raft handing a batch to the FSM
// to its bans being enforced on this node.
func BenchmarkFSMApplyAt1M(b *testing.B) {
	const bans = 1_000_000
	v := &views{}
	f := newFSM(v, func(err error) { b.Error(err) })
	st := raftstore.NewState()
	for i := range bans {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		e := raftstore.Event{Version: raftstore.SchemaVersion, Type: raftstore.TypeBanAdded, Time: benchT0,
			Ban: &raftstore.BanData{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Until: benchT0.Add(time.Hour), Reason: "rate_limit", Source: raftstore.SourceAuto}}
		if r := st.Apply(uint64(i+1), e); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	f.state = st
	v.publishAll(st)
	// A pool of entries with distinct prefixes: operator bans until lifted,
	// so banning a prefix again changes the state (a further strike) and
	// every entry publishes.
	const pool = 1 << 16
	entries := make([]raft.Log, pool)
	for i := range entries {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0xc0000000+uint32(i))
		data, err := raftstore.MarshalEvent(raftstore.Event{Version: raftstore.SchemaVersion, Type: raftstore.TypeBanAdded, Time: benchT0,
			Ban: &raftstore.BanData{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Reason: "operator", Source: raftstore.SourceOperator}})
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = raft.Log{Type: raft.LogCommand, Data: data}
	}
	index := uint64(bans)
	next := 0
	for _, size := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			logs := make([]*raft.Log, size)
			for b.Loop() {
				for i := range logs {
					index++
					l := entries[next%pool]
					next++
					l.Index = index
					logs[i] = &l
				}
				out := f.ApplyBatch(logs)
				if r, ok := out[size-1].(raftstore.Result); !ok || !r.Changed {
					b.Fatalf("entry %d: %+v", index, out[size-1])
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkBanPropagation measures, on a three-node cluster over mutual
// TLS on loopback, how long after `ban add` returns on follower A the
// other follower C refuses the address (C's ban view holds it). Each
// iteration is one ban; run with -benchtime=1000x for a thousand samples.
// It reports the p50 and p99 of that delay ("ms-p50", "ms-p99"), of the
// whole command as A's caller sees it ("apply-ms-p50/p99"), of the time
// from calling `ban add` on A to C refusing ("e2e-ms-p50/p99"), the share
// of bans C enforced before A's call returned, and the process CPU per ban
// (all three nodes). Variants: the nudge (a barrier
// after each leader commit, see Node.nudge) on and off, and CommitTimeout.
func BenchmarkBanPropagation(b *testing.B) {
	for _, nudge := range []bool{true, false} {
		for _, ct := range []time.Duration{50 * time.Millisecond, 5 * time.Millisecond, time.Millisecond} {
			b.Run(fmt.Sprintf("nudge=%v/commit=%v", nudge, ct), func(b *testing.B) {
				benchPropagation(b, nudge, ct)
			})
		}
	}
}

// banWatch is the address C's hook waits for and when it saw it.
type banWatch struct {
	addr netip.Addr
	seen chan time.Time // buffered: the first publish holding addr sends
	sent atomic.Bool
}

func benchPropagation(b *testing.B, nudge bool, commit time.Duration) {
	var watch atomic.Pointer[banWatch]
	nodes := map[string]*Node{}
	c := newTestClusterWith(b, func(cfg *Config) {
		cfg.Timing.CommitTimeout = commit
		cfg.Logger = slog.New(slog.DiscardHandler)
	}, func(n *Node) {
		n.noNudges = !nudge
		nodes[n.ID()] = n
		if n.ID() != "n3" {
			return
		}
		// C is n3 whenever n3 is a follower; the hook runs on n3's FSM
		// goroutine right after a new ban view is published.
		n.views.onBans = func() {
			w := watch.Load()
			if w != nil && n.views.bans.Load().Banned(w.addr, time.Now()) && w.sent.CompareAndSwap(false, true) {
				w.seen <- time.Now()
			}
		}
	}, "n1", "n2", "n3")
	l := c.leader()
	for l.ID() == "n3" { // C must be a follower: hand leadership over
		if err := l.raft.LeadershipTransfer().Error(); err != nil {
			b.Fatal(err)
		}
		l = c.leader()
	}
	cNode := nodes["n3"]
	var a *Node
	for _, n := range c.nodes {
		if n != l && n != cNode {
			a = n
		}
	}
	ctx := context.Background()
	if _, err := a.Apply(ctx, banCmd("192.0.2.1/32")); err != nil { // warm the forwarding connection
		b.Fatal(err)
	}
	prop := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	apply := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	e2e := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	early := 0
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		addr := netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)})
		i++
		w := &banWatch{addr: addr, seen: make(chan time.Time, 1)}
		watch.Store(w)
		start := time.Now()
		if _, err := a.Apply(ctx, banCmd(netip.PrefixFrom(addr, 32).String())); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		var seen time.Time
		select {
		case seen = <-w.seen:
		case <-time.After(10 * time.Second):
			b.Fatalf("C did not enforce ban %d within 10 s", i)
		}
		d := seen.Sub(returned)
		if d < 0 {
			early++ // C enforced it before A's caller heard back
			d = 0
		}
		prop.RecordValue(max(1, d.Microseconds()))
		e2e.RecordValue(max(1, seen.Sub(start).Microseconds()))
		apply.RecordValue(max(1, returned.Sub(start).Microseconds()))
	}
	cpu := cpuTime() - cpu0
	ms := func(us int64) float64 { return float64(us) / 1000 }
	b.ReportMetric(ms(prop.ValueAtQuantile(50)), "ms-p50")
	b.ReportMetric(ms(prop.ValueAtQuantile(99)), "ms-p99")
	b.ReportMetric(ms(apply.ValueAtQuantile(50)), "apply-ms-p50")
	b.ReportMetric(ms(apply.ValueAtQuantile(99)), "apply-ms-p99")
	b.ReportMetric(ms(e2e.ValueAtQuantile(50)), "e2e-ms-p50")
	b.ReportMetric(ms(e2e.ValueAtQuantile(99)), "e2e-ms-p99")
	b.ReportMetric(float64(early)/float64(b.N), "C-first/op")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkIdleCPU is the CPU a healthy three-node cluster (in this
// process) burns with no writes at all, per second of wall time, for each
// CommitTimeout: the leader sends each follower an AppendEntries at a
// random interval between CommitTimeout and twice it, whatever happens.
// The nudge costs nothing when idle. Run with -benchtime=1x (each
// iteration idles 10 s).
func BenchmarkIdleCPU(b *testing.B) {
	for _, ct := range []time.Duration{50 * time.Millisecond, 5 * time.Millisecond, time.Millisecond} {
		b.Run(fmt.Sprintf("commit=%v", ct), func(b *testing.B) {
			c := newTestClusterWith(b, func(cfg *Config) {
				cfg.Timing.CommitTimeout = ct
				cfg.Logger = slog.New(slog.DiscardHandler)
			}, nil, "n1", "n2", "n3")
			ctx := context.Background()
			if _, err := c.leader().Apply(ctx, banCmd("192.0.2.1/32")); err != nil {
				b.Fatal(err)
			}
			const idle = 10 * time.Second
			var used time.Duration
			for b.Loop() {
				cpu0 := cpuTime()
				time.Sleep(idle) // measuring idleness: nothing to wait for
				used += cpuTime() - cpu0
			}
			b.ReportMetric(float64(used)/float64(time.Duration(b.N)*idle)*1000, "cpu-ms/s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommitThroughput is the commit rate of a three-node cluster
// with 32 writers at once, each banning its own addresses one after
// another (so every write is a distinct entry), through the leader or
// through a follower (forwarded over the cluster port). It reports
// commits per second and the p50/p99 of one write as its writer sees it.
func BenchmarkCommitThroughput(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		b.Run("via="+via, func(b *testing.B) {
			c := newTestClusterWith(b, func(cfg *Config) { cfg.Logger = slog.New(slog.DiscardHandler) }, nil, "n1", "n2", "n3")
			n := c.leader()
			if via == "follower" {
				n = c.follower()
			}
			const writers = 32
			var next atomic.Uint32
			hists := make([]*hdrhistogram.Histogram, writers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				hists[w] = hdrhistogram.New(1, int64(10*time.Second), 3)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if int(i) > b.N {
							return
						}
						var a [4]byte
						binary.BigEndian.PutUint32(a[:], 0x0a000000+i)
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						_, err := n.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAdd, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32),
							Duration: time.Hour, Reason: "bench"})
						cancel()
						if err != nil {
							b.Error(err)
							return
						}
						hists[w].RecordValue(int64(time.Since(t0)))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := hdrhistogram.New(1, int64(10*time.Second), 3)
			for _, h := range hists {
				all.Merge(h)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
			b.ReportMetric(float64(all.ValueAtQuantile(50))/1e6, "ms-p50")
			b.ReportMetric(float64(all.ValueAtQuantile(99))/1e6, "ms-p99")
		})
	}
}
