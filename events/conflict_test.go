package events

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/nats-io/nats.go/jetstream"
)

func testConflict() TrustConflict {
	return TrustConflict{
		Key:       tofu.PinKey{Kind: tofu.PinClient, Scope: "example.org/app/"},
		Pinned:    tofu.Identity{Cert: [32]byte{1}, SPKI: [32]byte{2}},
		Presented: tofu.Identity{Cert: [32]byte{3}, SPKI: [32]byte{4}},
		Client:    netip.MustParseAddr("192.0.2.7"),
	}
}

// TestConflictPublisherPublishes checks a conflict's message in the
// stream: the CloudEvents headers, both identities' fingerprints, the
// node, and the client's hash, never its address.
func TestConflictPublisherPublishes(t *testing.T) {
	_, nc := runJetStream(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUDIT", Subjects: []string{ConflictSubject("c1")}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewRandomIPHasher()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewConflictPublisher(ConflictPublisherConfig{Cluster: "c1", Node: "n1", Conn: nc, Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := testConflict()
	p.TrustConflict(c)
	for p.Stats().Published+p.Stats().Failed == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("never published")
		case <-time.After(5 * time.Millisecond):
		}
	}
	msgs := streamMsgs(t, st)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1 (stats %+v)", len(msgs), p.Stats())
	}
	m := msgs[0]
	if m.Subject != "chimalli.c1.trust.conflict" || m.Header.Get(HeaderType) != "io.github.chimalli.trust.conflict" ||
		m.Header.Get(HeaderSpecVersion) != "1.0" || !strings.HasPrefix(m.Header.Get(HeaderID), "c1-conflict-n1-") ||
		m.Header.Get(HeaderMsgID) != m.Header.Get(HeaderID) || m.Header.Get(HeaderSource) != "/chimalli/c1/n1" {
		t.Errorf("subject %s, headers %v", m.Subject, m.Header)
	}
	if strings.Contains(string(m.Data), "192.0.2.7") {
		t.Errorf("raw client address in %s", m.Data)
	}
	var d ConflictData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatal(err)
	}
	want := ConflictData{Kind: "claim", Subject: "example.org/app/",
		Pinned:    ConflictIdentity{Cert: c.Pinned.CertFingerprint(), SPKI: c.Pinned.SPKIFingerprint()},
		Presented: ConflictIdentity{Cert: c.Presented.CertFingerprint(), SPKI: c.Presented.SPKIFingerprint()},
		Node:      "n1", Client: h.HashAddr(c.Client), Time: d.Time}
	if d != want || d.Time.IsZero() {
		t.Errorf("data %+v\nwant %+v", d, want)
	}
}

// TestConflictPublisherDropsWhenDown checks that a conflict is dropped
// and counted, never waited for, when the buffer is full or NATS is gone.
func TestConflictPublisherDropsWhenDown(t *testing.T) {
	s, nc := runJetStream(t)
	p, err := NewConflictPublisher(ConflictPublisherConfig{Cluster: "c1", Node: "n1", Conn: nc, Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Not open yet: the first waits in the buffer, the second is dropped.
	p.TrustConflict(testConflict())
	p.TrustConflict(testConflict())
	if st := p.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v, want one dropped", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.Shutdown()
	for nc.IsConnected() {
		select {
		case <-ctx.Done():
			t.Fatal("still connected to a server shut down")
		case <-time.After(time.Millisecond):
		}
	}
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for p.Stats().Dropped != 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("stats %+v, want the buffered one dropped too", p.Stats())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if st := p.Stats(); st.Published != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}
