package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// Health is the part of a node's Raft status that readiness checks and
// metrics read often: unlike Status it takes no lock on the state machine
// and hashes nothing.
type Health struct {
	State  string // leader, follower, candidate or shutdown
	Term   uint64
	Leader string // the leader's id; empty when none is known
	// LastContact is how long ago this follower last heard from its
	// leader; 0 on the leader, -1 when it never has.
	LastContact time.Duration
	// HeartbeatTimeout is Raft's: a follower that has not heard from its
	// leader for between one and two of it calls an election.
	HeartbeatTimeout time.Duration
	CommitIndex      uint64 // the last entry this node knows to be committed
	// AppliedIndex is Raft's applied index: the last committed entry
	// handed to the state machine, Raft's own no-op and barrier entries
	// included (so it reaches CommitIndex on an idle cluster).
	AppliedIndex uint64
	LastIndex    uint64 // the last entry in this node's log
	Failed       string // why the state machine stopped; empty while it runs
}

// Health returns this node's Raft health now.
func (n *Node) Health() Health {
	h := Health{State: "shutdown", LastContact: -1, HeartbeatTimeout: n.cfg.Timing.HeartbeatTimeout}
	if errp := n.fatalErr.Load(); errp != nil {
		h.Failed = (*errp).Error()
	}
	if n.raft == nil {
		return h
	}
	st := n.raft.State()
	h.State, h.Term = stateName(st), n.raft.CurrentTerm()
	h.Leader, _ = n.Leader()
	h.CommitIndex, h.AppliedIndex, h.LastIndex = n.raft.CommitIndex(), n.raft.AppliedIndex(), n.raft.LastIndex()
	switch last := n.raft.LastContact(); {
	case st == raft.Leader:
		h.LastContact = 0
	case !last.IsZero():
		h.LastContact = max(time.Since(last), 0) // raft stamps contacts with the real clock
	}
	return h
}
