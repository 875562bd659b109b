package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/raftstore"
)

// conflictSink hands the gateway's trust conflicts to the publisher.
type conflictSink struct{ p *events.ConflictPublisher }

var _ gateway.ConflictSink = conflictSink{}

// TrustConflict queues c; it never blocks.
func (s conflictSink) TrustConflict(c gateway.TrustConflict) {
	s.p.TrustConflict(events.TrustConflict(c))
}

// publishConflicts starts publishing the trust conflicts this node refuses
// on chimalli.<cluster>.trust.conflict, best effort, and returns the sink
// for the gateway's layers.
func (p *eventPlane) publishConflicts(ctx context.Context, cfg *config.Config, id string, hasher raftstore.AddrHasher, logger *slog.Logger) (gateway.ConflictSink, error) {
	cp, err := events.NewConflictPublisher(events.ConflictPublisherConfig{
		Cluster: cfg.NATS.ClusterName, Node: id, Conn: p.conn, Hasher: hasher, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("trust conflicts: %w", err)
	}
	if err := cp.Open(ctx); err != nil {
		return nil, fmt.Errorf("trust conflicts: %w", err)
	}
	p.subs, p.conflicts = append(p.subs, cp), cp
	return conflictSink{cp}, nil
}

// answerBans answers ban requests from outside on
// chimalli.<cluster>.cmd.ban (events.BanResponder), committing them
// through state.
func (p *eventPlane) answerBans(ctx context.Context, cfg *config.Config, state events.BanApplier, logger *slog.Logger) error {
	r, err := events.NewBanResponder(events.BanResponderConfig{Cluster: cfg.NATS.ClusterName, Conn: p.conn, State: state, Logger: logger})
	if err != nil {
		return err
	}
	if err := r.Open(ctx); err != nil {
		return err
	}
	p.subs = append(p.subs, r)
	return nil
}
