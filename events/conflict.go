package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TypeTrustConflict is the CloudEvents type suffix and subject name of a
// trust conflict: a node's observation, not committed state, so it goes
// to the audit stream (CHIMALLI_AUDIT), not CHIMALLI_EVENTS.
const TypeTrustConflict = "trust.conflict"

// TrustConflict is a certificate a node refused because it did not match
// the TOFU pin in force. It has the fields of gateway.TrustConflict, so
// one converts to the other.
type TrustConflict struct {
	Key               tofu.PinKey
	Pinned, Presented tofu.Identity
	// Client is raw: the publisher hashes it before it leaves the node.
	Client netip.Addr
}

// ConflictIdentity is one side of a conflict in a message: the
// certificate's and its public key's fingerprints.
type ConflictIdentity struct {
	Cert tofu.Fingerprint `json:"cert"`
	SPKI tofu.Fingerprint `json:"spki"`
}

// ConflictData is the data (JSON body) of a trust.conflict message.
type ConflictData struct {
	Kind      string           `json:"kind"`    // "claim" (a client on a claimed prefix) or "upstream"
	Subject   string           `json:"subject"` // host and path prefix, or host:port
	Pinned    ConflictIdentity `json:"pinned"`
	Presented ConflictIdentity `json:"presented"`
	Node      string           `json:"node"`
	Client    string           `json:"client,omitempty"` // the client's keyed hash, never its address
	Time      time.Time        `json:"time"`
}

// ConflictSubject returns chimalli.<cluster>.trust.conflict.
func ConflictSubject(cluster string) string { return "chimalli." + cluster + "." + TypeTrustConflict }

// ConflictMessage returns the message for c seen by node at time at, in
// the CloudEvents binding of the state events (see StateMessage) without
// a Raft index: its id is "<cluster>-conflict-<node>-<random>". h hashes
// the client; nil leaves the client out.
func ConflictMessage(cluster, node string, c TrustConflict, h raftstore.AddrHasher, at time.Time) (*nats.Msg, error) {
	if err := ValidateCluster(cluster); err != nil {
		return nil, err
	}
	if !c.Key.Kind.Valid() {
		return nil, fmt.Errorf("trust conflict: pin kind %v", c.Key.Kind)
	}
	d := ConflictData{
		Kind: raftstore.TrustKindName(c.Key.Kind), Subject: c.Key.Scope,
		Pinned:    ConflictIdentity{Cert: c.Pinned.CertFingerprint(), SPKI: c.Pinned.SPKIFingerprint()},
		Presented: ConflictIdentity{Cert: c.Presented.CertFingerprint(), SPKI: c.Presented.SPKIFingerprint()},
		Node:      node, Time: at.UTC(),
	}
	if h != nil && c.Client.IsValid() {
		d.Client = h.HashAddr(c.Client.Unmap())
	}
	body, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("trust conflict: %w", err)
	}
	id := cluster + "-conflict-" + node + "-" + raftstore.NewKey()
	m := newCloudEvent(ConflictSubject(cluster), id, "/chimalli/"+cluster+"/"+node, TypeTrustConflict, d.Time, body)
	m.Header.Set(HeaderSchemaVersion, "1")
	return m, nil
}

// ConflictPublisherConfig configures a ConflictPublisher.
type ConflictPublisherConfig struct {
	// Cluster and Node name the cluster and this node in subjects, ids
	// and the data.
	Cluster, Node string
	// Conn is the NATS connection to publish on.
	Conn *nats.Conn
	// Hasher hashes the client; nil leaves it out.
	Hasher raftstore.AddrHasher
	// Buffer is how many conflicts may wait for the publisher; 64 when 0.
	// Past it they are dropped (and counted).
	Buffer int
	// AckTimeout bounds the wait for the stream's acknowledgement; 5 s
	// when 0.
	AckTimeout time.Duration
	// Logger receives failures at warn; nil discards.
	Logger *slog.Logger
	// Now stamps the messages; time.Now when nil.
	Now func() time.Time
}

// ConflictPublisherStats counts what a publisher did.
type ConflictPublisherStats struct {
	Published uint64 // acknowledged by the stream
	Dropped   uint64 // not sent: the buffer was full or NATS was not connected
	Failed    uint64 // sent but not acknowledged
}

// ConflictPublisher publishes trust conflicts on
// chimalli.<cluster>.trust.conflict, best effort: TrustConflict never
// blocks, and a conflict that finds the buffer full or NATS disconnected
// is dropped and counted, not retried (the refusal itself is in the audit
// record). Lifecycle: New, Open, Close.
type ConflictPublisher struct {
	cfg ConflictPublisherConfig
	js  jetstream.JetStream
	log *slog.Logger
	ch  chan TrustConflict

	published, dropped, failed atomic.Uint64

	mu     sync.Mutex
	open   bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewConflictPublisher checks cfg and returns an unopened publisher.
func NewConflictPublisher(cfg ConflictPublisherConfig) (*ConflictPublisher, error) {
	if err := ValidateCluster(cfg.Cluster); err != nil {
		return nil, fmt.Errorf("conflict publisher: %w", err)
	}
	if cfg.Conn == nil || cfg.Node == "" {
		return nil, errors.New("conflict publisher: a connection and a node are required")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 64
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("conflict publisher: %w", err)
	}
	p := &ConflictPublisher{cfg: cfg, js: js, log: cfg.Logger, ch: make(chan TrustConflict, cfg.Buffer)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// TrustConflict queues c for publication, or drops it when the buffer is
// full. It never blocks; it is safe for concurrent use, before Open and
// after Close too (the conflict then stays in the buffer, or is dropped).
func (p *ConflictPublisher) TrustConflict(c TrustConflict) {
	select {
	case p.ch <- c:
	default:
		p.dropped.Add(1)
	}
}

// Open starts publishing in the background.
func (p *ConflictPublisher) Open(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		return errors.New("conflict publisher: already open")
	}
	p.open = true
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx)
	}()
	return nil
}

// Close stops publishing; conflicts still buffered are not sent.
func (p *ConflictPublisher) Close() error {
	p.mu.Lock()
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
	return nil
}

// Stats returns the publisher's counters.
func (p *ConflictPublisher) Stats() ConflictPublisherStats {
	return ConflictPublisherStats{Published: p.published.Load(), Dropped: p.dropped.Load(), Failed: p.failed.Load()}
}

func (p *ConflictPublisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-p.ch:
			p.publish(ctx, c)
		}
	}
}

func (p *ConflictPublisher) publish(ctx context.Context, c TrustConflict) {
	if !p.cfg.Conn.IsConnected() {
		p.dropped.Add(1)
		return
	}
	m, err := ConflictMessage(p.cfg.Cluster, p.cfg.Node, c, p.cfg.Hasher, p.cfg.Now())
	if err != nil {
		p.failed.Add(1)
		p.log.Warn("trust conflict: message", "err", err)
		return
	}
	actx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	if _, err := p.js.PublishMsg(actx, m); err != nil {
		p.failed.Add(1)
		p.log.Warn("trust conflict: publish", "err", err)
		return
	}
	p.published.Add(1)
}
