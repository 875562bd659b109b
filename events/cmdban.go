package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats.go"
)

// BanQueue is the queue group of the cmd.ban responders: of the nodes
// subscribed, one answers each request.
const BanQueue = "chimalli-ban"

// DefaultBanTimeout bounds the commit of one requested ban when
// BanResponderConfig.Timeout is zero.
const DefaultBanTimeout = 10 * time.Second

// BanApplier commits a command through the cluster's leader, from any
// node. raftstore/cluster.Node implements it; Apply must be safe for
// concurrent use.
type BanApplier interface {
	Apply(ctx context.Context, cmd raftstore.Command) (raftstore.Result, error)
}

// BanReply is the answer to a request on cmd.ban: the Raft index at which
// the ban committed, or why nothing was applied.
type BanReply struct {
	Index uint64 `json:"index,omitempty"`
	Error string `json:"error,omitempty"`
}

// BanResponderConfig configures a BanResponder.
type BanResponderConfig struct {
	// Cluster names the cluster: requests arrive on
	// chimalli.<cluster>.cmd.ban (BanSubject).
	Cluster string
	// Conn is the node's NATS connection; its user must be allowed to
	// subscribe to the subject and to answer.
	Conn *nats.Conn
	// State applies the ban.
	State BanApplier
	// Timeout bounds one commit; DefaultBanTimeout when 0.
	Timeout time.Duration
	// Logger receives one line per request at info (never the prefix, a
	// raw address), and failures at warn; nil discards.
	Logger *slog.Logger
}

// BanResponderStats counts what a responder did.
type BanResponderStats struct {
	Applied uint64 // bans committed
	Refused uint64 // requests answered with an error
}

// BanResponder answers ban requests from outside the cluster (a log
// analyser, say) on chimalli.<cluster>.cmd.ban, in the queue group
// BanQueue. A request is a JSON raftstore.BanRequest, decoded strictly
// (raftstore.DecodeBanRequest) and checked with the same rules as the
// admin API (BanRequest.ValidCommand) before it is applied; the reply is
// a JSON BanReply. A request that is not valid applies nothing, and one
// without a reply subject is ignored. Who may publish on the subject is
// the event plane's business (natsplane: the admin role only).
// Lifecycle: New, Open, Close.
type BanResponder struct {
	cfg BanResponderConfig
	log *slog.Logger

	applied, refused atomic.Uint64

	mu     sync.Mutex
	sub    *nats.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// BanSubject returns chimalli.<cluster>.cmd.ban.
func BanSubject(cluster string) string { return "chimalli." + cluster + ".cmd.ban" }

// NewBanResponder checks cfg and returns an unopened responder.
func NewBanResponder(cfg BanResponderConfig) (*BanResponder, error) {
	if err := ValidateCluster(cfg.Cluster); err != nil {
		return nil, fmt.Errorf("ban responder: %w", err)
	}
	if cfg.Conn == nil || cfg.State == nil {
		return nil, errors.New("ban responder: a connection and a state are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultBanTimeout
	}
	r := &BanResponder{cfg: cfg, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Open subscribes to the subject. The subscription is in place on the
// server when Open returns.
func (r *BanResponder) Open(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub != nil {
		return errors.New("ban responder: already open")
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	sub, err := r.cfg.Conn.QueueSubscribe(BanSubject(r.cfg.Cluster), BanQueue, r.handle)
	if err != nil {
		r.cancel()
		return fmt.Errorf("ban responder: %w", err)
	}
	if err := r.cfg.Conn.Flush(); err != nil {
		sub.Unsubscribe()
		r.cancel()
		return fmt.Errorf("ban responder: %w", err)
	}
	r.sub = sub
	return nil
}

// Close unsubscribes, cancels a commit under way and waits for its
// handler to return.
func (r *BanResponder) Close() error {
	r.mu.Lock()
	sub := r.sub
	r.sub = nil
	r.mu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	r.cancel()
	r.wg.Wait()
	return err
}

// Stats returns the responder's counters.
func (r *BanResponder) Stats() BanResponderStats {
	return BanResponderStats{Applied: r.applied.Load(), Refused: r.refused.Load()}
}

func (r *BanResponder) handle(m *nats.Msg) {
	if m.Reply == "" {
		r.log.Warn("ban request without a reply subject: ignored")
		r.refused.Add(1)
		return
	}
	r.wg.Add(1)
	defer r.wg.Done()
	reply, stage := r.apply(m.Data)
	if reply.Error != "" {
		// The error may quote the prefix, a raw address: the requester
		// gets it, the log only the stage.
		r.refused.Add(1)
		r.log.Info("ban request refused", "stage", stage)
	} else {
		r.applied.Add(1)
		r.log.Info("ban request committed", "index", reply.Index)
	}
	body, err := json.Marshal(reply)
	if err == nil {
		err = m.Respond(body)
	}
	if err != nil {
		r.log.Warn("ban request: reply", "err", err)
	}
}

// apply decodes, checks and commits one request; stage names the step
// that refused it (decode, invalid or apply).
func (r *BanResponder) apply(data []byte) (_ BanReply, stage string) {
	req, err := raftstore.DecodeBanRequest(data)
	if err != nil {
		return BanReply{Error: err.Error()}, "decode"
	}
	if req.Reason == "" {
		req.Reason = "external"
	}
	c, err := req.ValidCommand(`send "force": true to ban it anyway`)
	if err != nil {
		return BanReply{Error: err.Error()}, "invalid"
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	res, err := r.cfg.State.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAdd, Prefix: c.Prefix,
		Duration: c.Duration, Permanent: c.Permanent, Reason: c.Reason, Force: c.Force})
	switch {
	case err != nil:
		return BanReply{Error: "apply: " + err.Error()}, "apply"
	case res.Err != nil:
		return BanReply{Error: "apply: " + res.Err.Error()}, "apply"
	}
	return BanReply{Index: res.Index}, ""
}
