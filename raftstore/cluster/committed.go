package cluster

import (
	"fmt"
	"slices"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/hashicorp/raft"
)

// The committed log, as the state-event publisher reads it (it implements
// events.CommittedLog).

// CommittedRange returns the oldest index this node's log still holds (0
// when it holds none: every entry so far was compacted into a snapshot)
// and the index of the last entry this node has applied, which is
// committed. The events from first to last are final and may be read.
func (n *Node) CommittedRange() (first, last uint64, err error) {
	if n.store == nil {
		return 0, 0, ErrClosed
	}
	last = n.fsm.applied.Load()
	first, err = n.store.FirstIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: log: %w", err)
	}
	return first, last, nil
}

// ReadCommitted calls fn with the events in this node's log at index
// from to to, in index order. to is clamped to the last applied index, so
// fn sees committed events only. Entries that are not events (barriers,
// no-ops, configurations) are skipped, and so is a retry of a command
// the fold already applied at an earlier index (its idempotency key is
// remembered, for an hour: see raftstore.State.Applied): it changed
// nothing, it is the same command. An entry missing (compacted since
// CommittedRange) or that does not decode is an error, as is fn's; fn
// runs without any lock of the node's.
func (n *Node) ReadCommitted(from, to uint64, fn func(index uint64, e raftstore.Event) error) error {
	if n.store == nil {
		return ErrClosed
	}
	type entry struct {
		index uint64
		e     raftstore.Event
	}
	var evs []entry
	to = min(to, n.fsm.applied.Load())
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
		evs = append(evs, entry{i, e})
	}
	if len(evs) == 0 {
		return nil
	}
	n.fsm.read(func(st *raftstore.State) {
		evs = slices.DeleteFunc(evs, func(x entry) bool {
			first, ok := st.Applied(x.e.Key)
			return x.e.Key != "" && ok && first < x.index
		})
	})
	for _, x := range evs {
		if err := fn(x.index, x.e); err != nil {
			return err
		}
	}
	return nil
}

// Applied returns the index of the last entry this node has applied and
// a channel closed when it next advances.
func (n *Node) Applied() (uint64, <-chan struct{}) { return n.fsm.appliedCh() }
