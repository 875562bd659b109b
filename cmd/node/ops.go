package main

import (
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/ops/metrics"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// readiness returns the node's readiness check, the one rule both the
// ops listener's /readyz and the admin socket's (`chimalli health`) use.
func readiness(state *cluster.Node) func() error {
	return func() error { return metrics.Ready(raftHealth(state)) }
}

// raftHealth adapts the cluster node's health to the ops listener's.
func raftHealth(state *cluster.Node) metrics.Raft {
	h := state.Health()
	return metrics.Raft{
		State: h.State, Term: h.Term, Leader: h.Leader,
		LastContact: h.LastContact, HeartbeatTimeout: h.HeartbeatTimeout,
		CommitIndex: h.CommitIndex, AppliedIndex: h.AppliedIndex, LastIndex: h.LastIndex,
		Failed: h.Failed,
	}
}

// opsSources adapts the running components' own counters to what the
// ops listener exports; it reads them at each scrape.
func opsSources(id string, srv *gateway.Server, state *cluster.Node, ev *eventPlane, auditLog *events.AuditLog) metrics.Sources {
	src := metrics.Sources{
		Info: metrics.Info{NodeID: id, Version: buildVersion()},
		Gateway: func() metrics.Gateway {
			s := srv.Stats()
			return metrics.Gateway{
				Accepted: s.Accepted, Handshakes: s.Handshakes, Resumed: s.Resumed,
				HandshakeFailures: s.HandshakeFailed, RequestTimeouts: s.RequestTimeouts,
				RefusedAtAccept: s.RefusedAtAccept, Requests: s.Requests, Responses: s.Responses,
				OpenConnections: s.OpenConnections,
			}
		},
		Raft:       func() metrics.Raft { return raftHealth(state) },
		ActiveBans: func() int { return state.BanSet().Active(time.Now()) },
	}
	if ev.audit != nil {
		src.AuditPublisher = func() metrics.AuditPublisher {
			s := ev.audit.Stats()
			return metrics.AuditPublisher{
				Published: s.Published, Spooled: s.Spooled, PublishErrors: s.PublishErrors,
				Dropped: s.Dropped, SpoolDropped: s.SpoolDropped, SpoolErrors: s.SpoolErrors,
				Invalid: s.Invalid, SpoolBytes: s.SpoolBytes,
			}
		}
	}
	if auditLog != nil {
		src.AuditLog = func() metrics.AuditLog {
			s := auditLog.Stats()
			return metrics.AuditLog{Written: s.Written, Dropped: s.Dropped, WriteErrors: s.WriteErrors, Invalid: s.Invalid}
		}
	}
	if ev.conflicts != nil {
		src.ConflictPublisher = func() metrics.Publisher {
			s := ev.conflicts.Stats()
			return metrics.Publisher{Published: s.Published, Errors: s.Failed, Dropped: s.Dropped}
		}
	}
	if ev.state != nil {
		src.StatePublisher = func() metrics.Publisher {
			s := ev.state.Stats()
			return metrics.Publisher{Published: s.Published, Errors: s.Errors}
		}
	}
	return src
}
