package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/raft"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var _ events.CommittedLog = (*Node)(nil)

// stateNATS is a real NATS server with JetStream in t.TempDir() on
// loopback, with the state stream of cluster c1.
type stateNATS struct {
	t      testing.TB
	url    string
	stream jetstream.Stream
	hasher *events.IPHasher
}

func newStateNATS(t testing.TB) *stateNATS {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	sn := &stateNATS{t: t, url: s.ClientURL()}
	js, err := jetstream.New(sn.conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if sn.stream, err = js.CreateStream(ctx, events.StateStreamConfig("c1")); err != nil {
		t.Fatal(err)
	}
	if sn.hasher, err = events.NewIPHasher("k1", bytes.Repeat([]byte{7}, events.MinKeyBytes)); err != nil {
		t.Fatal(err)
	}
	return sn
}

func (sn *stateNATS) conn() *nats.Conn {
	sn.t.Helper()
	nc, err := nats.Connect(sn.url)
	if err != nil {
		sn.t.Fatal(err)
	}
	sn.t.Cleanup(nc.Close)
	return nc
}

// publisher starts a state publisher for n on a connection of its own,
// as each node has.
func (sn *stateNATS) publisher(n *Node) *events.StatePublisher {
	sn.t.Helper()
	p, err := events.NewStatePublisher(events.StatePublisherConfig{Cluster: "c1", Conn: sn.conn(), Log: n,
		Hasher: sn.hasher, Poll: 20 * time.Millisecond, Logger: testLogger(sn.t, n.ID()+"/pub")})
	if err != nil {
		sn.t.Fatal(err)
	}
	if err := p.Open(context.Background()); err != nil {
		sn.t.Fatal(err)
	}
	sn.t.Cleanup(func() { p.Close() })
	return p
}

// waitIndex waits until the stream's last message has Raft index want.
func (sn *stateNATS) waitIndex(want uint64) {
	sn.t.Helper()
	waitFor(sn.t, 60*time.Second, fmt.Sprintf("the stream to reach index %d", want), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := sn.stream.GetLastMsgForSubject(ctx, "chimalli.c1.>")
		if err != nil {
			return false
		}
		got, _ := events.StateMsgIndex(m.Header)
		return got == want
	})
}

func (sn *stateNATS) messages() []*jetstream.RawStreamMsg {
	sn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := sn.stream.Info(ctx)
	if err != nil {
		sn.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := sn.stream.GetMsg(ctx, seq)
		if err != nil {
			sn.t.Fatalf("sequence %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// committedBans returns the index of every ban.added in n's committed
// log that is not a retry of a command applied before (ReadCommitted
// skips those), and logs how many entries the log holds in all.
func committedBans(t testing.TB, n *Node) []uint64 {
	t.Helper()
	first, last, err := n.CommittedRange()
	if err != nil || first != 1 {
		t.Fatalf("log range from %d, %v: want the whole log", first, err)
	}
	entries := 0
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand {
			entries++
		}
	}
	var out []uint64
	defer func() { t.Logf("%d events in the log, %d ban.added to publish", entries, len(out)) }()
	err = n.ReadCommitted(1, last, func(i uint64, e raftstore.Event) error {
		if e.Type == raftstore.TypeBanAdded {
			out = append(out, i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var dottedQuad = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// Kill the leader during a burst of 1,000 bans, restart it: the stream
// holds exactly one ban.added per committed ban, in index order, no
// duplicate id, and no raw address anywhere.
func TestStateEventsLeaderKilledDuringBurst(t *testing.T) {
	sn := newStateNATS(t)
	c := newTestCluster(t, "n1", "n2", "n3")
	pubs := map[string]*events.StatePublisher{}
	for _, id := range []string{"n1", "n2", "n3"} {
		pubs[id] = sn.publisher(c.nodes[id])
	}
	old := c.leader()

	var mu sync.Mutex
	live := []*Node{c.nodes["n1"], c.nodes["n2"], c.nodes["n3"]}
	pick := func(k int) *Node {
		mu.Lock()
		defer mu.Unlock()
		return live[k%len(live)]
	}
	const total, workers = 1000, 8
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				cmd := banCmd(fmt.Sprintf("10.%d.%d.%d/32", i>>16, (i>>8)&255, i&255))
				cmd.Key = fmt.Sprintf("burst-%d", i) // a retry elsewhere applies once
				for attempt := 0; ; attempt++ {
					_, err := pick(i+attempt).Apply(ctx, cmd)
					if err == nil {
						break
					}
					if errors.Is(err, raftstore.ErrRefused) || ctx.Err() != nil {
						t.Errorf("ban %d: %v", i, err)
						return
					}
					// ErrClosed (the node was killed under the call) or no
					// leader: the outcome is unknown; retry with the key.
				}
				done.Add(1)
			}
		}()
	}
	waitFor(t, 60*time.Second, "a third of the burst", func() bool { return done.Load() >= total/3 })
	oldID := old.ID()
	mu.Lock()
	live = slices.DeleteFunc(live, func(n *Node) bool { return n == old })
	mu.Unlock()
	c.stop(oldID) // killed mid-burst: its publisher may have messages in flight
	pubs[oldID].Close()
	back := c.start(oldID)
	pubs[oldID] = sn.publisher(back)
	mu.Lock()
	live = append(live, back)
	mu.Unlock()
	wg.Wait()
	if t.Failed() {
		return
	}

	l := c.leader()
	if _, err := l.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	want := committedBans(t, l)
	if len(want) != total {
		t.Fatalf("%d committed bans to publish, want %d", len(want), total)
	}
	sn.waitIndex(want[len(want)-1])
	msgs := sn.messages()
	seen := map[string]bool{}
	hashes := map[string]bool{}
	var got []uint64
	for _, m := range msgs {
		id := m.Header.Get(events.HeaderMsgID)
		if seen[id] {
			t.Fatalf("Nats-Msg-Id %s twice", id)
		}
		seen[id] = true
		if m.Subject != "chimalli.c1.ban.added" {
			t.Fatalf("unexpected subject %s", m.Subject)
		}
		i, err := events.StateMsgIndex(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && i <= got[len(got)-1] {
			t.Fatalf("index %d after %d", i, got[len(got)-1])
		}
		got = append(got, i)
		var all bytes.Buffer
		all.WriteString(m.Subject)
		for k, vs := range m.Header {
			all.WriteString(k + ":" + fmt.Sprint(vs) + "\n")
		}
		all.Write(m.Data)
		if loc := dottedQuad.Find(all.Bytes()); loc != nil {
			t.Fatalf("a raw address %q in message %s", loc, id)
		}
		hashes[string(m.Data[:bytes.IndexByte(m.Data, ',')])] = true
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stream holds %d ban.added, the log %d (first difference near %v)", len(got), len(want), firstDiff(got, want))
	}
	if len(hashes) != total {
		t.Fatalf("%d distinct prefix hashes, want %d", len(hashes), total)
	}
	var gaps uint64
	for _, p := range pubs {
		gaps += p.Stats().Gaps
	}
	if gaps != 0 {
		t.Fatalf("%d gap markers: nothing was compacted", gaps)
	}
}

func firstDiff(a, b []uint64) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("position %d: %d vs %d", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// BenchmarkStateEventLatency measures a ban's way from the leader's
// Apply returning to a NATS subscriber receiving its ban.added, with
// three nodes on loopback and the leader publishing: p50/p99 over b.N
// bans made one at a time (run with -benchtime 1000x).
func BenchmarkStateEventLatency(b *testing.B) {
	sn := newStateNATS(b)
	c := newTestCluster(b, "n1", "n2", "n3")
	for _, id := range []string{"n1", "n2", "n3"} {
		sn.publisher(c.nodes[id])
	}
	l := c.leader()
	type recv struct {
		index uint64
		at    time.Time
	}
	got := make(chan recv, 1024)
	sub, err := sn.conn().Subscribe("chimalli.c1.ban.added", func(m *nats.Msg) {
		i, _ := events.StateMsgIndex(m.Header)
		got <- recv{i, time.Now()}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fromReturn := make([]time.Duration, 0, b.N)
	fromCall := make([]time.Duration, 0, b.N)
	early := 0
	b.ResetTimer()
	for i := range b.N {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		t0 := time.Now()
		res, err := l.Apply(ctx, banCmd(p.String()))
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		for r := range got {
			if r.index != res.Index {
				continue
			}
			if r.at.Before(t1) {
				early++ // received before Apply returned
			}
			fromReturn = append(fromReturn, max(0, r.at.Sub(t1)))
			fromCall = append(fromCall, r.at.Sub(t0))
			break
		}
	}
	b.StopTimer()
	q := func(d []time.Duration, p float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(p*float64(len(d)-1))].Microseconds())
	}
	b.ReportMetric(q(fromReturn, 0.5), "p50-µs-after-return")
	b.ReportMetric(q(fromReturn, 0.99), "p99-µs-after-return")
	b.ReportMetric(q(fromCall, 0.5), "p50-µs-from-call")
	b.ReportMetric(q(fromCall, 0.99), "p99-µs-from-call")
	b.ReportMetric(float64(early), "received-before-return")
}

// A retry committed twice (the new leader had not yet applied the first
// attempt when it checked the key) is in the log twice; the fold applies
// it once, and ReadCommitted yields it once, so it is published once.
func TestReadCommittedSkipsRetriesOfAppliedCommands(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := banCmd("192.0.2.80/32")
	cmd.Key = "retried"
	first, err := l.Apply(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The retry as a leader that missed the key would commit it: the same
	// event, proposed again.
	var ev raftstore.Event
	err = l.ReadCommitted(first.Index, first.Index, func(_ uint64, e raftstore.Event) error { ev = e; return nil })
	if err != nil || ev.Key != "retried" {
		t.Fatalf("read the first attempt: %+v, %v", ev, err)
	}
	data, err := raftstore.MarshalEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	f := l.raft.Apply(data, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if res, ok := f.Response().(raftstore.Result); !ok || res.Duplicate != first.Index {
		t.Fatalf("the fold's answer to the retry: %+v, want a duplicate of %d", f.Response(), first.Index)
	}
	if _, err := l.Apply(ctx, banCmd("192.0.2.81/32")); err != nil {
		t.Fatal(err)
	}
	var got []string
	_, last, _ := l.CommittedRange()
	err = l.ReadCommitted(1, last, func(i uint64, e raftstore.Event) error {
		got = append(got, fmt.Sprintf("%d %s", i, e.Ban.Prefix))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != fmt.Sprintf("%d 192.0.2.80/32", first.Index) {
		t.Fatalf("events read: %q, want the first attempt and the next ban only", got)
	}
}
