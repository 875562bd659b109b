package events

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runJetStream starts a real NATS server with JetStream in t.TempDir()
// on a loopback port and returns a connection to it.
func runJetStream(t testing.TB) (*server.Server, *nats.Conn) {
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
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}

func createStateStream(t testing.TB, nc *nats.Conn, cluster string) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, StateStreamConfig(cluster))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// memLog is a CommittedLog in memory: the publisher's own interface,
// faked above Raft. Entries with a nil event stand for barriers and
// no-ops.
type memLog struct {
	mu      sync.Mutex
	entries []*raftstore.Event // entries[i] is index first+i
	first   uint64
	commit  uint64
	leader  atomic.Bool
	asked   atomic.Int64 // IsLeader calls
	waitCh  chan struct{}
}

func newMemLog() *memLog {
	l := &memLog{first: 1, waitCh: make(chan struct{})}
	l.leader.Store(true)
	return l
}

func (l *memLog) IsLeader() bool {
	l.asked.Add(1)
	return l.leader.Load()
}

func (l *memLog) CommittedRange() (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		return 0, l.commit, nil
	}
	return l.first, l.commit, nil
}

func (l *memLog) ReadCommitted(from, to uint64, fn func(uint64, raftstore.Event) error) error {
	l.mu.Lock()
	to = min(to, l.commit)
	var out []struct {
		i uint64
		e raftstore.Event
	}
	for i := from; i <= to; i++ {
		if i < l.first {
			l.mu.Unlock()
			return fmt.Errorf("entry %d compacted", i)
		}
		if e := l.entries[i-l.first]; e != nil {
			out = append(out, struct {
				i uint64
				e raftstore.Event
			}{i, *e})
		}
	}
	l.mu.Unlock()
	for _, o := range out {
		if err := fn(o.i, o.e); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLog) Applied() (uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commit, l.waitCh
}

// append commits e (nil: a non-event entry) and returns its index.
func (l *memLog) append(e *raftstore.Event) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	l.commit = l.first + uint64(len(l.entries)) - 1
	close(l.waitCh)
	l.waitCh = make(chan struct{})
	return l.commit
}

// compact drops the entries before index.
func (l *memLog) compact(index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = l.entries[index-l.first:]
	l.first = index
}

func banEvent(i int) *raftstore.Event {
	return &raftstore.Event{Version: 1, Type: raftstore.TypeBanAdded, Time: time.Date(2026, 11, 30, 12, 0, 0, i, time.UTC),
		Node: "n1", Ban: &raftstore.BanData{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			Reason: "test", Source: "operator"}}
}

func startPublisher(t testing.TB, nc *nats.Conn, log CommittedLog, cluster string) *StatePublisher {
	t.Helper()
	p, err := NewStatePublisher(StatePublisherConfig{Cluster: cluster, Conn: nc, Log: log, Hasher: testHasher(t),
		Poll: 20 * time.Millisecond, AckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// streamMsgs reads every message of the stream in order.
func streamMsgs(t testing.TB, s jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("sequence %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// waitStreamIndex waits until the stream's last message has Raft index
// want.
func waitStreamIndex(t testing.TB, s jetstream.Stream, cluster string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := s.GetLastMsgForSubject(ctx, "chimalli."+cluster+".>")
		cancel()
		if err == nil {
			if got, _ := StateMsgIndex(m.Header); got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the stream to reach index %d (last: %v)", want, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkExactlyOnce checks that msgs are the published events of want
// (index → event, in index order), each once, in order.
func checkExactlyOnce(t testing.TB, msgs []*jetstream.RawStreamMsg, want []uint64) {
	t.Helper()
	seen := map[string]bool{}
	var got []uint64
	for _, m := range msgs {
		id := m.Header.Get(HeaderMsgID)
		if seen[id] {
			t.Fatalf("Nats-Msg-Id %s twice in the stream", id)
		}
		seen[id] = true
		i, err := StateMsgIndex(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && i <= got[len(got)-1] {
			t.Fatalf("index %d after %d: not in commit order", i, got[len(got)-1])
		}
		got = append(got, i)
	}
	if len(got) != len(want) {
		t.Fatalf("stream holds %d events, want %d", len(got), len(want))
	}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("event %d has index %d, want %d", k, got[k], want[k])
		}
	}
}

// The publisher publishes every committed event once, in order, skips
// non-events and ticket keys, and a new publisher (no memory) resumes
// from the stream's last index without republishing.
func TestStatePublisherResumesFromTheStream(t *testing.T) {
	_, nc := runJetStream(t)
	s := createStateStream(t, nc, "c1")
	log := newMemLog()
	var want []uint64
	addBans := func(n int) {
		for i := range n {
			want = append(want, log.append(banEvent(len(want))))
			if i%10 == 0 {
				log.append(nil) // a barrier
				log.append(&raftstore.Event{Version: 1, Type: raftstore.TypeTicketKeyAdded, Time: time.Now(),
					TicketKey: &raftstore.TicketKeyData{ID: 1}})
			}
		}
	}
	addBans(300)
	p := startPublisher(t, nc, log, "c1")
	waitStreamIndex(t, s, "c1", want[len(want)-1])
	p.Close()
	addBans(200)
	p2 := startPublisher(t, nc, log, "c1")
	waitStreamIndex(t, s, "c1", want[len(want)-1])
	msgs := streamMsgs(t, s)
	checkExactlyOnce(t, msgs, want)
	for _, m := range msgs {
		if m.Subject != "chimalli.c1.ban.added" {
			t.Fatalf("subject %s: a ticket key or a non-event was published", m.Subject)
		}
	}
	if st := p2.Stats(); st.Published != 200 {
		t.Fatalf("the second publisher published %d, want the 200 new events only", st.Published)
	}
}

// A follower publishes nothing; once it leads it publishes everything
// committed before.
func TestStatePublisherOnlyTheLeaderPublishes(t *testing.T) {
	_, nc := runJetStream(t)
	s := createStateStream(t, nc, "c1")
	log := newMemLog()
	log.leader.Store(false)
	var want []uint64
	for i := range 50 {
		want = append(want, log.append(banEvent(i)))
	}
	p := startPublisher(t, nc, log, "c1")
	// Let it ask five times whether it leads: Resumes counts the times it
	// looked at the stream, which only a leader does.
	for log.asked.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	if st := p.Stats(); st.Resumes != 0 || st.Published != 0 {
		t.Fatalf("a follower's publisher acted: %+v", st)
	}
	log.leader.Store(true)
	waitStreamIndex(t, s, "c1", want[len(want)-1])
	checkExactlyOnce(t, streamMsgs(t, s), want)
}

// Two publishers that both believe they lead (an old leader that has not
// noticed yet, and the new one) publish the same log: the stream still
// holds each event once, in order.
func TestStatePublisherTwoLeadersPublishOnce(t *testing.T) {
	_, nc := runJetStream(t)
	s := createStateStream(t, nc, "c1")
	log := newMemLog()
	var want []uint64
	for i := range 500 {
		want = append(want, log.append(banEvent(i)))
	}
	nc2, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	startPublisher(t, nc, log, "c1")
	startPublisher(t, nc2, log, "c1")
	for i := 500; i < 1000; i++ {
		want = append(want, log.append(banEvent(i)))
	}
	waitStreamIndex(t, s, "c1", want[len(want)-1])
	checkExactlyOnce(t, streamMsgs(t, s), want)
}

// A publisher that died between publishing and the acknowledgement left
// its messages in flight; the next one publishes the same ids again: the
// stream keeps one copy of each.
func TestStatePublisherRepublishIsDeduplicated(t *testing.T) {
	_, nc := runJetStream(t)
	s := createStateStream(t, nc, "c1")
	log := newMemLog()
	var want []uint64
	for i := range 100 {
		want = append(want, log.append(banEvent(i)))
	}
	// The dead publisher's messages: the first 60, published without
	// waiting for an acknowledgement, exactly as the publisher forms them.
	h := testHasher(t)
	err := log.ReadCommitted(1, 60, func(index uint64, e raftstore.Event) error {
		m, err := StateMessage("c1", index, e, h)
		if err != nil {
			return err
		}
		return nc.PublishMsg(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same range again, as a publisher with a stale position would:
	// JetStream answers each as a duplicate.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = log.ReadCommitted(1, 60, func(index uint64, e raftstore.Event) error {
		m, err := StateMessage("c1", index, e, h)
		if err != nil {
			return err
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			return err
		}
		if !ack.Duplicate {
			return fmt.Errorf("index %d stored twice (sequence %d)", index, ack.Sequence)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	startPublisher(t, nc, log, "c1")
	waitStreamIndex(t, s, "c1", want[len(want)-1])
	checkExactlyOnce(t, streamMsgs(t, s), want)
}

// Entries compacted away before they were published are not silently
// skipped: a gap marker names them, then publishing goes on.
func TestStatePublisherMarksACompactedGap(t *testing.T) {
	_, nc := runJetStream(t)
	s := createStateStream(t, nc, "c1")
	log := newMemLog()
	for i := range 30 {
		log.append(banEvent(i))
	}
	log.compact(21) // 1..20 are in a snapshot only
	p := startPublisher(t, nc, log, "c1")
	waitStreamIndex(t, s, "c1", 30)
	msgs := streamMsgs(t, s)
	if len(msgs) != 11 || msgs[0].Subject != "chimalli.c1.events.gap" || string(msgs[0].Data) != `{"from":1,"to":20,"reason":"compacted"}` {
		t.Fatalf("stream: %d messages, first %s %s", len(msgs), msgs[0].Subject, msgs[0].Data)
	}
	var want []uint64
	for i := uint64(20); i <= 30; i++ {
		want = append(want, i)
	}
	checkExactlyOnce(t, msgs, want)
	if st := p.Stats(); st.Gaps != 1 || st.Missed != 20 {
		t.Fatalf("stats %+v, want 1 gap of 20 entries", st)
	}
}

func TestNewStatePublisherRefuses(t *testing.T) {
	_, nc := runJetStream(t)
	for name, cfg := range map[string]StatePublisherConfig{
		"bad cluster": {Cluster: "a.b", Conn: nc, Log: newMemLog(), Hasher: testHasher(t)},
		"no hasher":   {Cluster: "c1", Conn: nc, Log: newMemLog()},
		"no log":      {Cluster: "c1", Conn: nc, Hasher: testHasher(t)},
		"no conn":     {Cluster: "c1", Log: newMemLog(), Hasher: testHasher(t)},
	} {
		if _, err := NewStatePublisher(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// With no stream to publish to, the publisher counts its failures and
// keeps trying; once the stream exists it publishes.
func TestStatePublisherCountsErrors(t *testing.T) {
	_, nc := runJetStream(t)
	log := newMemLog()
	want := log.append(banEvent(0))
	p := startPublisher(t, nc, log, "c1")
	deadline := time.Now().Add(30 * time.Second)
	for p.Stats().Errors == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no error counted without a stream: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	s := createStateStream(t, nc, "c1")
	waitStreamIndex(t, s, "c1", want)
	if st := p.Stats(); st.Published != 1 || st.Errors == 0 {
		t.Fatalf("stats %+v", st)
	}
}
