package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A leader that dies without a word (its host or container killed: no FIN,
// no RST, packets dropped) leaves a command forwarded to it waiting for an
// answer that never comes, while the others elect a new leader within an
// election timeout or two. This node learns of it as Raft does: its
// follower loop hears no heartbeat for HeartbeatTimeout and forgets the
// leader. leaderWatch turns that into a signal; a forward to the old
// leader is then aborted and retried at the new one (the command's
// idempotency key makes the retry apply once), and idle forwarding
// connections to the old leader are dropped.

// errLeaderChanged ends a forwarded call whose target stopped being the
// leader this node knows of. Retryable.
var errLeaderChanged = fmt.Errorf("%w: the leader changed", errForwardUnavailable)

// leaderPoll is how often the watch reads the leader besides Raft's
// observations (which Raft drops when the observer's channel is full).
const leaderPoll = 100 * time.Millisecond

// leaderWatch broadcasts changes of the leader this node knows of.
type leaderWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed at the next change
}

// next returns a channel closed at the next change of the leader.
func (w *leaderWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	return w.changed
}

func (w *leaderWatch) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed != nil {
		close(w.changed)
	}
	w.changed = make(chan struct{})
}

// observeLeader registers for Raft's leader observations (which Raft
// drops when the channel is full: a caller reads the leader afresh on
// each, and polls too). stop deregisters.
func (n *Node) observeLeader() (_ <-chan raft.Observation, stop func()) {
	obs := make(chan raft.Observation, 16)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(o)
	return obs, func() { n.raft.DeregisterObserver(o) }
}

// watchLeader follows the leader until the node closes: on each change it
// drops idle forwarding connections to the old leader and wakes whoever
// waits on n.leaders.
func (n *Node) watchLeader() {
	obs, stop := n.observeLeader()
	defer stop()
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	_, last := n.Leader()
	for {
		select {
		case <-obs:
		case <-tick.C:
		case <-n.done:
			return
		}
		_, addr := n.Leader()
		if addr == last {
			continue
		}
		if last != "" {
			n.fwd.dropIdle(last)
		}
		n.log.Debug("leader changed", "from", last, "to", addr)
		last = addr
		n.leaders.broadcast()
	}
}

// whileLeader returns a context that ends, with cause errLeaderChanged,
// once this node no longer takes addr for the leader's address (at once
// if it does not now), or with cause ErrClosed when the node closes. stop
// releases it.
func (n *Node) whileLeader(ctx context.Context, addr string) (_ context.Context, stop func()) {
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			changed := n.leaders.next()
			if _, cur := n.Leader(); cur != addr {
				cancel(errLeaderChanged)
				return
			}
			select {
			case <-changed:
			case <-lctx.Done():
				return
			case <-n.done:
				cancel(ErrClosed)
				return
			}
		}
	}()
	return lctx, func() { cancel(context.Canceled) }
}
