package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const auditSubject = "chimalli.c1.audit.edge-1"

// createAuditStream creates the audit stream as natsplane does (which
// this package cannot import): the cluster's audit subjects, a ten-minute
// duplicate window.
func createAuditStream(t testing.TB, nc *nats.Conn) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "CHIMALLI_AUDIT", Subjects: []string{"chimalli.c1.audit.*"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// auditTestConfig is a publisher on nc with a spool in dir and short
// timeouts.
func auditTestConfig(nc *nats.Conn, dir string) AuditPublisherConfig {
	return AuditPublisherConfig{
		Conn: nc, Subject: auditSubject, Node: "edge-1", SpoolDir: dir,
		AckTimeout: 500 * time.Millisecond, RetryInterval: 50 * time.Millisecond,
	}
}

func openPub(t testing.TB, cfg AuditPublisherConfig) *AuditPublisher {
	t.Helper()
	p, err := OpenAuditPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func closePub(t testing.TB, p *AuditPublisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// until calls cond until it holds, failing the test after 60 s.
func until(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusal returns a record of a refusal at accept of client i.
func refusal(i int) AuditRecord {
	return AuditRecord{
		Time: time.Now().UTC(), Client: fmt.Sprintf("k1:%032x", i), Stage: StageAccept, Reason: "rate_limited_hard",
	}
}

// recordAll records n records from workers goroutines, retrying a record
// the full buffer refused, and returns their IDs in order of seq.
func recordAll(t testing.TB, p *AuditPublisher, n, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := refusal(i)
				for !p.Record(&r) {
					r.ID = ""
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// storedRecords reads every message of the stream: the records, in stream
// order, after checking that each message's Nats-Msg-Id is its record's ID.
func storedRecords(t testing.TB, s jetstream.Stream) []AuditRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditRecord
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		r, err := ParseAuditRecord(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != r.ID {
			t.Fatalf("message %d: Nats-Msg-Id %q, record id %q", seq, id, r.ID)
		}
		out = append(out, r)
	}
	return out
}

func streamMsgCount(s jetstream.Stream) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// waitStored waits until the stream holds n messages.
func waitStored(t testing.TB, s jetstream.Stream, n uint64) {
	t.Helper()
	until(t, fmt.Sprintf("%d messages in the stream", n), func() error {
		got, err := streamMsgCount(s)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d messages", got)
		}
		return nil
	})
}

// checkOnce fails unless recs holds n records with distinct IDs.
func checkOnce(t testing.TB, recs []AuditRecord, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, r := range recs {
		if ids[r.ID] {
			t.Fatalf("record %s stored twice", r.ID)
		}
		ids[r.ID] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct records stored, want %d", len(ids), n)
	}
	return ids
}

// seqOf returns the seq of an ID "<node>/<boot>/<seq>" and its boot.
func seqOf(t testing.TB, id string) (string, uint64) {
	t.Helper()
	i := strings.LastIndexByte(id, '/')
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return id[:i], n
}

func TestAuditPublisherExactlyOnce(t *testing.T) {
	_, nc := runJetStream(t)
	s := createAuditStream(t, nc)
	p := openPub(t, auditTestConfig(nc, filepath.Join(t.TempDir(), "spool")))
	const n = 3000
	recordAll(t, p, n, 4)
	closePub(t, p)
	waitStored(t, s, n)
	checkOnce(t, storedRecords(t, s), n)
	// Records that outran the window went through the spool: Spooled may be
	// anything, but every record was published once.
	if st := p.Stats(); st.Published != n || st.Replayed != st.Spooled || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAuditPublisherRestartSendsNothingTwice spools records while the
// stream does not exist, replays them through a second publisher, and
// replays a copy of the same spool (a node that died before deleting
// it) through a third: the stream holds each record once, in order.
func TestAuditPublisherRestartSendsNothingTwice(t *testing.T) {
	_, nc := runJetStream(t)
	dir := filepath.Join(t.TempDir(), "spool")
	a := openPub(t, auditTestConfig(nc, dir))
	const n = 500
	recordAll(t, a, n, 1)
	until(t, "every record spooled", func() error {
		if st := a.Stats(); st.Spooled != n {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	if st := a.Stats(); st.SpoolBytes <= 0 {
		t.Fatalf("spool holds %d records but SpoolBytes = %d", n, st.SpoolBytes)
	}
	closePub(t, a)
	copyDir(t, dir, dir+"-copy")

	s := createAuditStream(t, nc)
	b := openPub(t, auditTestConfig(nc, dir))
	waitStored(t, s, n)
	r := refusal(n)
	b.Record(&r)
	closePub(t, b)
	waitStored(t, s, n+1)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spool not emptied: %v", ents)
	}
	if st := b.Stats(); st.SpoolBytes != 0 {
		t.Fatalf("spool emptied but SpoolBytes = %d", st.SpoolBytes)
	}

	c := openPub(t, auditTestConfig(nc, dir+"-copy"))
	until(t, "the copy replayed", func() error {
		if st := c.Stats(); st.Replayed != n {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	closePub(t, c)
	recs := storedRecords(t, s)
	checkOnce(t, recs, n+1)
	checkInOrder(t, recs)
}

// checkInOrder fails unless each boot's records are in the stream in the
// order they were made, but for the one documented exception: records in
// flight (at most DefaultAuditWindow) when JetStream stopped taking them
// may be stored after later ones, once each, when the spool is replayed
// (an asynchronous publish can lose a record on the broken connection
// while the broker has already stored the ones after it).
func checkInOrder(t testing.TB, recs []AuditRecord) {
	t.Helper()
	last := map[string]uint64{}
	late := 0
	for _, r := range recs {
		boot, seq := seqOf(t, r.ID)
		if seq <= last[boot] {
			late++
			continue
		}
		last[boot] = seq
	}
	if late > DefaultAuditWindow {
		t.Fatalf("%d records stored out of order, more than the %d that can be in flight", late, DefaultAuditWindow)
	}
	if late > 0 {
		t.Logf("%d records in flight at the failure were stored after later ones", late)
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.Mkdir(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// restartableServer is a JetStream server on a fixed loopback port and
// store, so that it can be shut down and started again.
type restartableServer struct {
	opts *server.Options
	s    *server.Server
}

func startRestartable(t testing.TB) *restartableServer {
	t.Helper()
	rs := &restartableServer{opts: &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true}}
	rs.start(t)
	rs.opts.Port = rs.s.Addr().(*net.TCPAddr).Port
	return rs
}

func (rs *restartableServer) start(t testing.TB) {
	t.Helper()
	s, err := server.NewServer(rs.opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	rs.s = s
	t.Cleanup(s.Shutdown)
}

// TestAuditPublisherBrokerDown stops the broker while records come,
// starts it again, and finds every record in the stream once, in order.
func TestAuditPublisherBrokerDown(t *testing.T) {
	rs := startRestartable(t)
	nc, err := nats.Connect(rs.s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s := createAuditStream(t, nc)
	spool := filepath.Join(t.TempDir(), "spool")
	p := openPub(t, auditTestConfig(nc, spool))
	recordAll(t, p, 300, 1)
	waitStored(t, s, 300)

	rs.s.Shutdown()
	rs.s.WaitForShutdown()
	recordAll(t, p, 700, 1)
	until(t, "records spooled", func() error {
		if st := p.Stats(); st.PublishErrors == 0 || st.Spooled == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	rs.start(t)
	waitStored(t, s, 1000)
	until(t, "the spool replayed and deleted", func() error {
		if ents, err := os.ReadDir(spool); err != nil || len(ents) != 0 {
			return fmt.Errorf("spool holds %d files (%v); stats %+v", len(ents), err, p.Stats())
		}
		return nil
	})
	closePub(t, p)
	recs := storedRecords(t, s)
	checkOnce(t, recs, 1000)
	checkInOrder(t, recs)
	t.Logf("stats %+v", p.Stats())
}

func TestAuditPublisherMergesARefusalFlood(t *testing.T) {
	_, nc := runJetStream(t)
	s := createAuditStream(t, nc)
	gate := make(chan struct{})
	cfg := auditTestConfig(nc, filepath.Join(t.TempDir(), "spool"))
	cfg.Buffer, cfg.AggregateAbove = 16, 8
	p, err := openAuditPublisher(cfg, gate)
	if err != nil {
		t.Fatal(err)
	}
	sec := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 8 { // up to the high-water mark: one by one
		r := refusal(100 + i)
		r.Time = sec
		if !p.Record(&r) {
			t.Fatalf("record %d refused", i)
		}
	}
	for i := range 1000 { // above it: merged per client, reason, second
		for _, c := range []int{1, 2} {
			r := refusal(c)
			r.Time = sec.Add(time.Duration(i) * time.Microsecond)
			if !p.Record(&r) {
				t.Fatalf("refusal %d of client %d refused", i, c)
			}
		}
	}
	r := refusal(1) // the same client, the next second
	r.Time = sec.Add(time.Second)
	p.Record(&r)
	r = refusal(1) // the same client and second, another reason
	r.Time, r.Reason = sec, "banned"
	p.Record(&r)
	req := requestRecord() // not a refusal: queued while there is room, then dropped
	req.ID = ""
	for range 10 {
		rr := req
		p.Record(&rr)
	}
	close(gate)
	closePub(t, p)
	st := p.Stats()
	if st.Merged != 2*999 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want 1998 merged and 2 dropped", st)
	}
	waitStored(t, s, 8+4+8)
	counts := map[string]int{}
	for _, r := range storedRecords(t, s) {
		if r.Count > 1 {
			counts[fmt.Sprintf("%s %s %d", r.Client, r.Reason, r.Time.Unix())] = r.Count
		}
	}
	want := map[string]int{
		fmt.Sprintf("k1:%032x rate_limited_hard %d", 1, sec.Unix()): 1000,
		fmt.Sprintf("k1:%032x rate_limited_hard %d", 2, sec.Unix()): 1000,
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("merged records %v, want %v", counts, want)
	}
}

// TestAuditPublisherCountsSpoolFullDrops spools into a small spool while
// the stream does not exist: what does not fit is dropped, counted and
// logged; what fits is published once the stream exists.
func TestAuditPublisherCountsSpoolFullDrops(t *testing.T) {
	_, nc := runJetStream(t)
	var logBuf syncBuffer
	cfg := auditTestConfig(nc, filepath.Join(t.TempDir(), "spool"))
	cfg.SpoolMaxBytes, cfg.LogEvery = 8<<10, time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	p := openPub(t, cfg)
	const n = 200
	recordAll(t, p, n, 1)
	until(t, "every record spooled or dropped", func() error {
		if st := p.Stats(); st.Spooled+st.SpoolDropped != n || st.SpoolDropped == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	until(t, "the drops logged", func() error {
		if !strings.Contains(logBuf.String(), "records dropped") {
			return errors.New("no log line yet")
		}
		return nil
	})
	if !strings.Contains(logBuf.String(), fmt.Sprintf("total_spool_full=%d", p.Stats().SpoolDropped)) {
		t.Fatalf("log does not count the drops:\n%s", logBuf.String())
	}
	s := createAuditStream(t, nc)
	spooled := p.Stats().Spooled
	waitStored(t, s, spooled)
	closePub(t, p)
	checkOnce(t, storedRecords(t, s), int(spooled))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
