package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CommittedLog is what the state publisher reads: this node's Raft log
// and whether it leads. raftstore/cluster.Node implements it. Every
// method may be called from the publisher's goroutine while Raft runs.
type CommittedLog interface {
	// IsLeader reports whether this node is the leader now.
	IsLeader() bool
	// CommittedRange returns the oldest index the log still holds (0:
	// none; older entries were compacted into a snapshot) and the last
	// index whose events may be read: committed, and applied on this node.
	CommittedRange() (first, last uint64, err error)
	// ReadCommitted calls fn with the events at index from..to (at most
	// last), in order, skipping entries that are not events and retries
	// of a command already applied at an earlier index (the same command,
	// which changed nothing). An entry compacted away meanwhile is an
	// error.
	ReadCommitted(from, to uint64, fn func(index uint64, e raftstore.Event) error) error
	// Applied returns the index the node has applied and a channel closed
	// when it next advances.
	Applied() (uint64, <-chan struct{})
}

// StateStreamName is the JetStream stream of committed state events.
const StateStreamName = "CHIMALLI_EVENTS"

// StateStreamConfig returns the stream the state publisher writes for
// cluster: file storage, the cluster's state subjects only (the publisher
// chains each message to the stream's last sequence, so nothing else may
// publish into it), a two-minute de-duplication window.
func StateStreamConfig(cluster string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StateStreamName,
		Description: "Chimalli committed state events of cluster " + cluster,
		Subjects:    StateSubjects(cluster),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	}
}

// StatePublisherConfig configures a StatePublisher.
type StatePublisherConfig struct {
	// Cluster names the cluster in subjects and ids (ValidateCluster).
	Cluster string
	// Stream is the JetStream stream to write; StateStreamName when empty.
	// It must exist and hold the cluster's state subjects only.
	Stream string
	// Conn is the NATS connection to publish on.
	Conn *nats.Conn
	// Log is this node's Raft log.
	Log CommittedLog
	// Hasher hashes banned prefixes and rule prefixes; required.
	Hasher raftstore.AddrHasher
	// Logger receives the publisher's logs; nil discards.
	Logger *slog.Logger
	// Window is how many messages may await their acknowledgement; 256
	// when 0.
	Window int
	// AckTimeout bounds the wait for one acknowledgement; 5 s when 0.
	AckTimeout time.Duration
	// Poll is how often a follower checks whether it became the leader;
	// 200 ms when 0.
	Poll time.Duration
	// Now stamps gap markers; time.Now when nil.
	Now func() time.Time
}

// StatePublisherStats counts what a publisher did.
type StatePublisherStats struct {
	Published uint64 // messages acknowledged by the stream
	Gaps      uint64 // gap markers published
	Missed    uint64 // committed entries the gap markers stand for
	Resumes   uint64 // times the publisher re-read the stream's last index
	Errors    uint64 // publishing stopped on an error (other than a conflict) and resumed from the stream
}

// StatePublisher publishes every committed state event to JetStream,
// exactly once and in commit order, while this node leads. It keeps no
// position of its own: each time it starts publishing (on becoming
// leader, after an error) it reads the Raft index of the stream's last
// message and goes on from the entry after it. Each message carries
// Nats-Msg-Id "<cluster>-<index>" and expects the stream's last sequence
// to be its predecessor's (Nats-Expected-Last-Sequence), so a message
// whose predecessor was lost, or that another publisher (an old leader)
// already wrote, is refused instead of stored out of order or twice; the
// publisher then re-reads the stream and resumes. Lifecycle: New, Open,
// Close.
type StatePublisher struct {
	cfg StatePublisherConfig
	js  jetstream.JetStream
	log *slog.Logger

	published, gaps, missed, resumes, errs atomic.Uint64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewStatePublisher returns an unopened publisher.
func NewStatePublisher(cfg StatePublisherConfig) (*StatePublisher, error) {
	if err := ValidateCluster(cfg.Cluster); err != nil {
		return nil, fmt.Errorf("state publisher: %w", err)
	}
	if cfg.Conn == nil || cfg.Log == nil || cfg.Hasher == nil {
		return nil, errors.New("state publisher: a connection, a log and a hasher are required")
	}
	if cfg.Stream == "" {
		cfg.Stream = StateStreamName
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// A JetStream context of its own: its async publishes, their
	// pending limit and timeout are this publisher's alone.
	js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(cfg.Window),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("state publisher: %w", err)
	}
	p := &StatePublisher{cfg: cfg, js: js, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Open starts publishing in the background.
func (p *StatePublisher) Open(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx)
	}()
	return nil
}

// Close stops publishing and waits for the publisher's goroutine. A
// message published and not yet acknowledged may still be stored: the
// next publisher finds it in the stream.
func (p *StatePublisher) Close() error {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	return nil
}

// Stats returns the publisher's counters.
func (p *StatePublisher) Stats() StatePublisherStats {
	return StatePublisherStats{Published: p.published.Load(), Gaps: p.gaps.Load(), Missed: p.missed.Load(), Resumes: p.resumes.Load(), Errors: p.errs.Load()}
}

func (p *StatePublisher) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; {
		if !p.cfg.Log.IsLeader() {
			attempt = 0
			p.sleep(ctx, p.cfg.Poll)
			continue
		}
		err := p.lead(ctx)
		if err == nil || ctx.Err() != nil {
			attempt = 0
			continue
		}
		if errors.Is(err, errConflict) {
			// Another publisher wrote meanwhile: re-read at once.
			p.log.Info("state events: the stream moved under this publisher; resuming", "err", err)
			continue
		}
		p.errs.Add(1)
		p.log.Warn("state events: publish failed; resuming from the stream", "err", err)
		p.sleep(ctx, min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second))
		attempt++
	}
}

func (p *StatePublisher) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errConflict: the stream's last sequence was not the one a message
// expected, or a message was a duplicate: someone else wrote to it.
var errConflict = errors.New("stream changed by another publisher")

// position is where the stream stands: the Raft index of its last state
// event and its last sequence.
type position struct {
	index, seq uint64
}

// resume reads the stream's last sequence and the Raft index of its
// newest message. An empty stream (or one whose messages all expired)
// has index 0: the publisher starts from the oldest entry the log holds.
func (p *StatePublisher) resume(ctx context.Context) (position, error) {
	p.resumes.Add(1)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	s, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return position{}, fmt.Errorf("stream %s: %w", p.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return position{}, fmt.Errorf("stream %s: %w", p.cfg.Stream, err)
	}
	pos := position{seq: info.State.LastSeq}
	if info.State.Msgs == 0 {
		return pos, nil
	}
	m, err := s.GetLastMsgForSubject(ctx, "chimalli."+p.cfg.Cluster+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return pos, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("stream %s: last message: %w", p.cfg.Stream, err)
	}
	pos.index, err = StateMsgIndex(m.Header)
	if err != nil {
		return position{}, fmt.Errorf("stream %s: last message (sequence %d): %w", p.cfg.Stream, m.Sequence, err)
	}
	// A message stored between Info and the read is newer than the
	// sequence Info gave: the pair (index, sequence) must be one message's.
	pos.seq = max(pos.seq, m.Sequence)
	return pos, nil
}

// lead publishes while this node leads: from the entry after the
// stream's last, every committed event, then each new one as it is
// applied. It returns nil when leadership is lost.
func (p *StatePublisher) lead(ctx context.Context) error {
	pos, err := p.resume(ctx)
	if err != nil {
		return err
	}
	next := pos.index + 1
	for ctx.Err() == nil && p.cfg.Log.IsLeader() {
		_, advanced := p.cfg.Log.Applied() // before reading the commit index: no wake-up is missed
		first, last, err := p.cfg.Log.CommittedRange()
		if err != nil {
			return err
		}
		if next > last {
			t := time.NewTimer(p.cfg.Poll)
			select {
			case <-advanced:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		b := &batch{p: p, pos: pos}
		if first == 0 || first > next {
			// The entries from next on were compacted into a snapshot
			// before they were published: say so, once, in the stream.
			to := last
			if first != 0 {
				to = min(first-1, last)
			}
			p.log.Error("state events: committed entries were compacted before they were published; publishing a gap marker",
				"from", next, "to", to)
			m, err := GapMessage(p.cfg.Cluster, next, to, p.cfg.Now())
			if err != nil {
				return err
			}
			if err := b.send(ctx, m, to, true); err != nil {
				return err
			}
			p.missed.Add(to - next + 1)
			next = to + 1
		}
		to := min(last, next+uint64(4*p.cfg.Window)-1)
		if next <= to {
			err = p.cfg.Log.ReadCommitted(next, to, func(index uint64, e raftstore.Event) error {
				m, err := StateMessage(p.cfg.Cluster, index, e, p.cfg.Hasher)
				if err != nil || m == nil {
					return err
				}
				return b.send(ctx, m, index, false)
			})
		}
		if ferr := b.flush(ctx); err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
		pos, next = b.pos, to+1
	}
	return nil
}

// batch publishes messages in order, at most Window awaiting their
// acknowledgement, each expecting the stream's last sequence to be its
// predecessor's.
type batch struct {
	p       *StatePublisher
	pos     position  // the stream as the acknowledged messages left it
	pending []pending // sent, in order; the next expects pos.seq+len(pending)
}

type pending struct {
	f     jetstream.PubAckFuture
	index uint64
	gap   bool
}

// send publishes m, the message of Raft index (a gap marker's: the last
// index it stands for).
func (b *batch) send(ctx context.Context, m *nats.Msg, index uint64, gap bool) error {
	if len(b.pending) >= b.p.cfg.Window {
		if err := b.ackOldest(ctx); err != nil {
			return err
		}
	}
	f, err := b.p.js.PublishMsgAsync(m, jetstream.WithExpectLastSequence(b.pos.seq+uint64(len(b.pending))))
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Header.Get(HeaderMsgID), err)
	}
	b.pending = append(b.pending, pending{f: f, index: index, gap: gap})
	return nil
}

func (b *batch) flush(ctx context.Context) error {
	var first error
	for len(b.pending) > 0 {
		// Wait for every outstanding acknowledgement even after an error,
		// so that the next batch does not race this one's messages.
		if err := b.ackOldest(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (b *batch) ackOldest(ctx context.Context) error {
	pd := b.pending[0]
	b.pending = b.pending[1:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	t := time.NewTimer(b.p.cfg.AckTimeout + time.Second) // the context's own timeout answers first
	defer t.Stop()
	select {
	case ack := <-pd.f.Ok():
		if ack.Duplicate || ack.Sequence != b.pos.seq+1 {
			return fmt.Errorf("%w: %s stored as sequence %d (duplicate %v), expected %d",
				errConflict, pd.f.Msg().Header.Get(HeaderMsgID), ack.Sequence, ack.Duplicate, b.pos.seq+1)
		}
		b.pos = position{index: pd.index, seq: ack.Sequence}
		b.p.published.Add(1)
		if pd.gap {
			b.p.gaps.Add(1)
		}
		return nil
	case err := <-pd.f.Err():
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("%w: %s: %w", errConflict, pd.f.Msg().Header.Get(HeaderMsgID), err)
		}
		return fmt.Errorf("publish %s: %w", pd.f.Msg().Header.Get(HeaderMsgID), err)
	case <-t.C:
		return fmt.Errorf("publish %s: no acknowledgement", pd.f.Msg().Header.Get(HeaderMsgID))
	case <-ctx.Done():
		return ctx.Err()
	}
}
