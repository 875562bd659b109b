package cluster

import (
	"context"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// ticketLoop makes the leader add a session-ticket key whenever the newest
// one is older than TicketRotation (or there is none), so every node seals
// and opens tickets with the same keys: a client resumes on any node.
func (n *Node) ticketLoop() {
	defer n.wg.Done()
	check := min(n.cfg.TicketRotation/4, time.Minute)
	t := time.NewTicker(max(check, 10*time.Millisecond))
	defer t.Stop()
	for {
		if n.IsLeader() {
			keys := n.TicketKeys()
			if len(keys) == 0 || n.now().Sub(keys[len(keys)-1].Created) >= n.cfg.TicketRotation {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ApplyTimeout)
				if _, err := n.Apply(ctx, raftstore.Command{Op: raftstore.OpTicketRotate}); err != nil {
					n.log.Warn("rotate session-ticket key", "err", err)
				}
				cancel()
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
