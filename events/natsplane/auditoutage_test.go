package natsplane_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/nats-io/nats.go/jetstream"
)

// outageEnv names the outage of TestAuditRecordsSurviveQuorumLoss, a Go
// duration; 5 s when unset. The scenario is 30 s:
//
//	CHIMALLI_AUDIT_OUTAGE=30s go test -run TestAuditRecordsSurviveQuorumLoss ./events/natsplane/
const outageEnv = "CHIMALLI_AUDIT_OUTAGE"

// TestAuditRecordsSurviveQuorumLoss is issue 9's audit test: a three-node
// cluster with an R3 CHIMALLI_AUDIT; two nodes go down for the outage
// (the stream has no quorum) while the third goes on recording; they come
// back, and the stream then holds every record of the whole run exactly
// once, in the order they were recorded.
func TestAuditRecordsSurviveQuorumLoss(t *testing.T) {
	outage := 5 * time.Second
	if v := os.Getenv(outageEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", outageEnv, err)
		}
		outage = d
	}
	ids := []string{"n1", "n2", "n3"}
	l := newPKI(t, ids...)
	routes := make([]string, len(ids))
	for i := range ids {
		routes[i] = freeAddr(t)
	}
	cfgs := map[string]natsplane.Config{}
	servers := map[string]*natsplane.Server{}
	for i, id := range ids {
		cfgs[id] = natsplane.Config{
			Name: id, ClusterName: "edge", StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: logger(t),
			ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, id), Users: users(ids...),
			ClusterListen: routes[i], ClusterTLS: routeTLS(t, l, id), Routes: routes,
		}
		servers[id] = start(t, cfgs[id])
	}
	scfg := natsplane.StreamsConfig{ClusterName: "edge", Replicas: 3}
	if err := natsplane.WaitStreams(ctxT(t), jsOf(t, servers["n3"].Conn()), scfg, nil); err != nil {
		t.Fatal(err)
	}

	pub, err := events.OpenAuditPublisher(events.AuditPublisherConfig{
		Conn: servers["n3"].Conn(), Subject: natsplane.AuditSubject("edge", "n3"), Node: "n3",
		SpoolDir: filepath.Join(t.TempDir(), "audit-spool"), AckTimeout: time.Second,
		RetryInterval: 100 * time.Millisecond, Logger: logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })

	// n3 serves traffic all along: one record every millisecond.
	var (
		mu       sync.Mutex
		recorded []string
	)
	stop := make(chan struct{})
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			r := events.AuditRecord{Client: fmt.Sprintf("k1:%032x", i%97), Stage: events.StageRequest,
				Scheme: "gemini", Host: "example.org", Path: "/", Status: 20, Reason: "allowed"}
			if pub.Record(&r) {
				mu.Lock()
				recorded = append(recorded, r.ID)
				mu.Unlock()
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(recorded) }

	js3 := jsOf(t, servers["n3"].Conn())
	eventually(t, "records stored before the outage", func(ctx context.Context) error {
		if st := pub.Stats(); st.Published < 100 {
			return fmt.Errorf("%d published", st.Published)
		}
		return nil
	})
	before := count()
	t.Logf("shutting n1 and n2 down for %s", outage)
	for _, id := range []string{"n1", "n2"} {
		if err := servers[id].Close(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the publisher spooling", func(ctx context.Context) error {
		if st := pub.Stats(); st.Spooled == 0 || st.PublishErrors == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	time.Sleep(outage) // the scenario: the outage lasts this long
	during := count() - before
	for _, id := range []string{"n1", "n2"} {
		servers[id] = start(t, cfgs[id])
	}
	published := pub.Stats().Published
	eventually(t, "records published again", func(ctx context.Context) error {
		if st := pub.Stats(); st.Published <= published || st.Replayed == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	close(stop)
	<-producing
	if err := pub.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	t.Logf("%d records, %d during the outage; stats %+v", count(), during, st)
	if st.Dropped != 0 || st.SpoolDropped != 0 || st.SpoolErrors != 0 {
		t.Fatalf("records lost: %+v", st)
	}

	want := map[string]bool{}
	mu.Lock()
	for _, id := range recorded {
		want[id] = true
	}
	order := append([]string(nil), recorded...)
	mu.Unlock()
	var got []string
	eventually(t, "every record in CHIMALLI_AUDIT", func(ctx context.Context) error {
		var err error
		got, err = readAudit(ctx, js3, len(want))
		return err
	})
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("record %s stored twice", id)
		}
		if !want[id] {
			t.Fatalf("record %s stored but never recorded", id)
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d records stored", len(seen), len(want))
	}
	// In recorded order, but for records in flight when quorum was lost
	// (at most the publisher's window): those may be stored later, once.
	pos := make(map[string]int, len(order))
	for i, id := range order {
		pos[id] = i
	}
	maxSeen, late := -1, 0
	for _, id := range got {
		if pos[id] < maxSeen {
			late++
			continue
		}
		maxSeen = pos[id]
	}
	if late > events.DefaultAuditWindow {
		t.Fatalf("%d records stored out of recorded order, more than the %d that can be in flight", late, events.DefaultAuditWindow)
	}
}

// readAudit reads the whole audit stream with an ordered consumer and
// returns the records' IDs in stream order; an error unless it holds
// exactly want messages.
func readAudit(ctx context.Context, js jetstream.JetStream, want int) ([]string, error) {
	st, err := js.Stream(ctx, natsplane.StreamAudit)
	if err != nil {
		return nil, err
	}
	if n := st.CachedInfo().State.Msgs; n != uint64(want) {
		return nil, fmt.Errorf("%d messages, want %d", n, want)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for len(ids) < want {
		batch, err := c.Fetch(min(want-len(ids), 1000), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			r, err := events.ParseAuditRecord(m.Data())
			if err != nil {
				return nil, err
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != r.ID {
				return nil, errors.New("Nats-Msg-Id is not the record's id")
			}
			ids = append(ids, r.ID)
			n++
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("read %d of %d", len(ids), want)
		}
	}
	return ids, nil
}
