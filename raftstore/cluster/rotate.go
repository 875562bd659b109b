package cluster

import (
	"context"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// rotation is a key the leader replaces every so often through Raft.
type rotation struct {
	what   string            // for the log
	every  time.Duration     // zero: never
	newest func() time.Time  // the newest key's creation; zero when there is none
	cmd    raftstore.Command // what the leader proposes
}

// rotations returns the keys this node rotates as leader: the TLS
// session-ticket keys (so every node seals and opens tickets with the same
// keys: a client resumes on any node) and the audit key (so every node
// hashes a client alike).
func (n *Node) rotations() []rotation {
	var out []rotation
	if n.cfg.TicketRotation > 0 {
		out = append(out, rotation{what: "session-ticket key", every: n.cfg.TicketRotation,
			newest: func() time.Time {
				if keys := n.TicketKeys(); len(keys) > 0 {
					return keys[len(keys)-1].Created
				}
				return time.Time{}
			},
			cmd: raftstore.Command{Op: raftstore.OpTicketRotate}})
	}
	if n.cfg.AuditKeyRotation > 0 {
		out = append(out, rotation{what: "audit key", every: n.cfg.AuditKeyRotation,
			newest: func() time.Time {
				if keys := n.AuditKeys(); len(keys) > 0 {
					return keys[len(keys)-1].Created
				}
				return time.Time{}
			},
			cmd: raftstore.Command{Op: raftstore.OpAuditKeyRotate, Duration: n.cfg.AuditKeyRetention}})
	}
	return out
}

// rotateLoop makes the leader add a key whenever the newest one is older
// than its rotation (or there is none). It checks at a quarter of the
// shortest rotation (at least every minute) and at once when this node
// becomes leader. One loop serves every rotation: raft's leadership
// notifications go to one reader.
func (n *Node) rotateLoop(rots []rotation) {
	defer n.wg.Done()
	check := time.Minute
	for _, r := range rots {
		check = min(check, r.every/4)
	}
	t := time.NewTicker(max(check, 10*time.Millisecond))
	defer t.Stop()
	for {
		if n.IsLeader() {
			for _, r := range rots {
				if newest := r.newest(); newest.IsZero() || n.now().Sub(newest) >= r.every {
					ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ApplyTimeout)
					if _, err := n.Apply(ctx, r.cmd); err != nil {
						n.log.Warn("rotate "+r.what, "err", err)
					}
					cancel()
				}
			}
		}
		select {
		case <-t.C:
		case <-n.leaderCh():
		case <-n.done:
			return
		}
	}
}

// leaderCh returns raft's leadership notifications (a node that becomes
// leader checks the keys at once).
func (n *Node) leaderCh() <-chan bool {
	if n.raft == nil {
		return nil
	}
	return n.raft.LeaderCh()
}
