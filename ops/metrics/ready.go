package metrics

import (
	"errors"
	"fmt"
	"time"
)

// MaxApplyLag is how many committed entries a ready node may not yet have
// handed to its state machine: a node that applies as it should is a few
// entries behind at most, for a moment, under a burst of writes.
const MaxApplyLag = 64

// ContactTimeouts is how many heartbeat timeouts a ready follower may go
// without hearing from its leader. Leaders send a heartbeat every tenth
// of one; a follower calls an election after between one and two.
const ContactTimeouts = 2

// ErrNotReady is wrapped by every error Ready returns.
var ErrNotReady = errors.New("not ready")

// Ready is the node's readiness rule. It returns nil when the node is
// caught up with its cluster:
//
//   - its state machine has not stopped (Failed is empty);
//   - it is the leader or a follower, and knows the leader;
//   - a follower heard from the leader within ContactTimeouts heartbeat
//     timeouts;
//   - it has handed every entry it knows to be committed to its state
//     machine, give or take MaxApplyLag entries
//     (CommitIndex - AppliedIndex <= MaxApplyLag).
//
// Otherwise it returns a one-line reason wrapping ErrNotReady.
func Ready(r Raft) error {
	switch {
	case r.Failed != "":
		return fmt.Errorf("%w: cluster state stopped: %s", ErrNotReady, r.Failed)
	case r.State != StateLeader && r.State != StateFollower:
		return fmt.Errorf("%w: raft is %s: no leader", ErrNotReady, r.State)
	case r.Leader == "":
		return fmt.Errorf("%w: no leader known", ErrNotReady)
	}
	if r.State == StateFollower {
		bound := ContactTimeouts * r.HeartbeatTimeout
		switch {
		case r.LastContact < 0:
			return fmt.Errorf("%w: never heard from leader %s", ErrNotReady, r.Leader)
		case r.LastContact > bound:
			return fmt.Errorf("%w: last heard from leader %s %s ago (more than %s)", ErrNotReady, r.Leader, r.LastContact.Round(time.Millisecond), bound)
		}
	}
	if r.CommitIndex > r.AppliedIndex && r.CommitIndex-r.AppliedIndex > MaxApplyLag {
		return fmt.Errorf("%w: applied index %d is %d entries behind commit index %d (more than %d)",
			ErrNotReady, r.AppliedIndex, r.CommitIndex-r.AppliedIndex, r.CommitIndex, MaxApplyLag)
	}
	return nil
}
