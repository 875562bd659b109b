package cluster

import (
	"fmt"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/raft"
)

// CommittedRange returns the oldest index this node's log still holds (0
// when it holds none: every entry so far was compacted into a snapshot,
// or there is none yet) and the commit index this node knows. Entries
// from first to commit are committed and final; on the leader they are
// the whole committed log that was not compacted.
func (n *Node) CommittedRange() (first, commit uint64, err error) {
	if n.raft == nil || n.store == nil {
		return 0, 0, ErrClosed
	}
	commit = n.raft.CommitIndex()
	first, err = n.store.FirstIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: log: %w", err)
	}
	return first, commit, nil
}

// ReadCommitted calls fn with every event in this node's log at index
// from to to, in index order; entries that are not events (barriers,
// no-ops, configurations) are skipped. to is clamped to the commit index,
// so fn sees committed events only. An entry missing (compacted since
// CommittedRange) or that does not decode is an error, as is fn's.
func (n *Node) ReadCommitted(from, to uint64, fn func(index uint64, e raftstore.Event) error) error {
	if n.raft == nil || n.store == nil {
		return ErrClosed
	}
	to = min(to, n.raft.CommitIndex())
	for i := max(from, 1); i <= to; i++ {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			return fmt.Errorf("cluster: log entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := raftstore.UnmarshalEvent(l.Data)
		if err != nil {
			return fmt.Errorf("cluster: log entry %d: %w", i, err)
		}
		if err := fn(i, e); err != nil {
			return err
		}
	}
	return nil
}

// Applied returns the index of the last entry this node has applied and
// a channel closed when it next advances.
func (n *Node) Applied() (uint64, <-chan struct{}) { return n.fsm.appliedCh() }
