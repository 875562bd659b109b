package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
	"github.com/hashicorp/raft"
)

// fsm is the raft.FSM over raftstore.State. Raft calls ApplyBatch,
// Snapshot and Restore from one goroutine; the mutex orders them against
// the readers that need the whole state (status, listings, the leader
// turning a command into an event). The request path never takes it: it
// reads the views, published with atomic stores after each batch.
//
// An entry that does not decode (an unknown schema version, a malformed
// event) is fatal by rule: the fsm stops applying (every later entry is
// refused too, so the state stays as it was before the bad entry) and
// calls fatal once, which stops the node. Skipping the entry would let
// this node's decisions drift from every other node's.
type fsm struct {
	mu    sync.Mutex
	state *raftstore.State
	views *views
	fatal func(error)

	failed  atomic.Pointer[error]
	applied atomic.Uint64 // the index of the last entry applied (any type)
	// provisional is the last index of the local log that views were
	// built from at start (see loadLocal); until the FSM has applied as
	// far, it does not publish views, so a restarted node never enforces
	// less than it did before it stopped while it catches up.
	provisional uint64
	waitMu      sync.Mutex
	waitCh      chan struct{} // closed and replaced when applied advances
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(v *views, fatal func(error)) *fsm {
	f := &fsm{state: raftstore.NewState(), views: v, fatal: fatal, waitCh: make(chan struct{})}
	v.publishAll(f.state)
	return f
}

// Apply applies one entry. Raft uses ApplyBatch; Apply is for the
// raft.FSM interface.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch folds a batch of committed entries and publishes the views
// the batch changed, once.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.Lock()
	var changed viewSet
	auditGen := f.state.AuditKeyGen()
	for i, l := range logs {
		if errp := f.failed.Load(); errp != nil {
			out[i] = *errp
			continue
		}
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := raftstore.UnmarshalEvent(l.Data)
		if err != nil {
			var uv *raftstore.UnknownVersionError
			if errors.As(err, &uv) {
				uv.Index = l.Index
			} else {
				err = fmt.Errorf("log entry %d: %w", l.Index, err)
			}
			f.failed.Store(&err)
			out[i] = err
			f.fatal(err)
			continue
		}
		res := f.state.Apply(l.Index, e)
		out[i] = res
		if res.Changed {
			changed |= viewOf(e.Type)
			if e.Type == raftstore.TypeBanLifted && f.views.onLift != nil {
				f.views.onLift(e.Ban.Prefix)
			}
		}
	}
	if f.state.AuditKeyGen() != auditGen { // a key added, or one forgotten by any entry's time
		changed |= viewAudit
	}
	if n := len(logs); n > 0 && f.provisional != 0 && logs[n-1].Index >= f.provisional {
		f.provisional = 0
		changed = viewAll // replace the provisional views
	}
	if changed != 0 && f.provisional == 0 {
		f.views.publish(f.state, changed)
	}
	if changed&viewBans != 0 {
		f.state.KeepFrozen(freezeSlack)
	}
	f.mu.Unlock()
	if n := len(logs); n > 0 {
		f.advance(logs[n-1].Index)
	}
	return out
}

// advance records that entries up to index are applied and wakes waiters.
func (f *fsm) advance(index uint64) {
	f.waitMu.Lock()
	if index > f.applied.Load() {
		f.applied.Store(index)
		close(f.waitCh)
		f.waitCh = make(chan struct{})
	}
	f.waitMu.Unlock()
}

// appliedCh returns the applied index and a channel closed when it next
// advances.
func (f *fsm) appliedCh() (uint64, <-chan struct{}) {
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	return f.applied.Load(), f.waitCh
}

// Snapshot captures the state: Raft does not call Apply while Snapshot
// runs, so this is a consistent point. Capturing costs the ban changes
// since the last snapshot and a copy of the small parts (State.Freeze), so
// applies are not held up even at a million bans; Persist writes the
// frozen copy while Apply goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errp := f.failed.Load(); errp != nil {
		return nil, *errp
	}
	return &fsmSnapshot{applied: f.applied.Load(), state: f.state.Freeze()}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("restore: header: %w", err)
	}
	var hdr struct {
		Applied uint64 `json:"applied"`
	}
	if err := strictJSON(line, &hdr); err != nil {
		return fmt.Errorf("restore: header: %w", err)
	}
	st, err := raftstore.ReadSnapshot(br)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	applied := max(hdr.Applied, st.Index())
	f.mu.Lock()
	f.state = st
	if f.provisional != 0 && applied >= f.provisional {
		f.provisional = 0
	}
	if f.provisional == 0 {
		f.views.publishAll(st)
	}
	f.mu.Unlock()
	f.advance(applied)
	return nil
}

// loadLocal folds what this node has on disk (its newest snapshot and
// the log entries after it, committed or not) into a provisional state
// and publishes its views, before Raft starts. Raft applies entries only
// once a leader confirms them committed, which after a restart takes an
// election at least; meanwhile the node enforces what it enforced before
// it stopped (possibly a few entries ahead, which the leader may yet
// overrule: the real state replaces these views once it has applied as
// far). It returns the last index folded (0: nothing on disk).
func (f *fsm) loadLocal(snaps raft.SnapshotStore, logs raft.LogStore) (uint64, error) {
	st := raftstore.NewState()
	var from uint64
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return 0, fmt.Errorf("open snapshot: %w", err)
		}
		br := bufio.NewReader(rc)
		if _, err := br.ReadBytes('\n'); err != nil {
			rc.Close()
			return 0, fmt.Errorf("read snapshot: %w", err)
		}
		st, err = raftstore.ReadSnapshot(br)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("read snapshot: %w", err)
		}
		from = metas[0].Index
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, err
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, err
	}
	upto := from
	for i := max(from+1, first); i <= last && i > 0; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("log entry %d: %w", i, err)
		}
		upto = i
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := raftstore.UnmarshalEvent(l.Data)
		if err != nil {
			break // the real FSM will stop on it; enforce what came before
		}
		st.Apply(l.Index, e)
	}
	if upto == 0 {
		return 0, nil
	}
	f.mu.Lock()
	f.provisional = upto
	f.views.publishAll(st)
	f.mu.Unlock()
	return upto, nil
}

// read runs fn with the state locked. fn must not keep st.
func (f *fsm) read(fn func(st *raftstore.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.state)
}

// freezeSlack bounds the ban changes a snapshot catches up on while it
// holds up Raft's applies: at a million bans about 5 ms' worth.
const freezeSlack = 1024

// fsmSnapshot is a frozen state and the index of the last entry the FSM
// had applied (a configuration entry may follow the last event), which
// goes first, in a line of its own, so a node restored from the snapshot
// knows how far it is.
type fsmSnapshot struct {
	applied uint64
	state   *raftstore.Frozen
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		if _, err := fmt.Fprintf(sink, "{\"applied\":%d}\n", s.applied); err != nil {
			return err
		}
		return s.state.WriteSnapshot(sink)
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// viewSet says which views a batch changed.
type viewSet uint8

const (
	viewBans viewSet = 1 << iota
	viewRules
	viewPins
	viewTickets
	viewAudit

	viewAll = viewBans | viewRules | viewPins | viewTickets | viewAudit
)

func viewOf(t raftstore.EventType) viewSet {
	switch t {
	case raftstore.TypeBanAdded, raftstore.TypeBanLifted:
		return viewBans
	case raftstore.TypeRuleAdded, raftstore.TypeRuleRemoved:
		return viewRules
	case raftstore.TypeTrustPinned, raftstore.TypeTrustChanged, raftstore.TypeTrustRevoked:
		return viewPins
	case raftstore.TypeTicketKeyAdded:
		return viewTickets
	}
	return 0
}

// views are the immutable views the gateway reads without a lock.
type views struct {
	bans    atomic.Pointer[raftstore.BanSet]
	rules   atomic.Pointer[RuleSet]
	pins    atomic.Pointer[map[tofu.PinKey]tofu.Pin]
	tickets atomic.Pointer[[]raftstore.TicketKeyData]
	audit   atomic.Pointer[[]raftstore.AuditKeyData]
	onBans  func()             // called after a new ban view is published; may be nil
	onLift  func(netip.Prefix) // a ban was lifted (before the view is published); may be nil
	onRules func(*RuleSet)     // the rules view changed; may be nil
}

func (v *views) publishAll(st *raftstore.State) {
	v.publish(st, viewAll)
}

func (v *views) publish(st *raftstore.State, which viewSet) {
	if which&viewBans != 0 {
		v.bans.Store(st.Bans().View(st.LastTime()))
		if v.onBans != nil {
			v.onBans()
		}
	}
	if which&viewRules != 0 {
		rs := newRuleSet(st.Rules())
		v.rules.Store(rs)
		if v.onRules != nil {
			v.onRules(rs)
		}
	}
	if which&viewPins != 0 {
		m := make(map[tofu.PinKey]tofu.Pin)
		for _, p := range st.Pins() {
			m[p.Key] = p
		}
		v.pins.Store(&m)
	}
	if which&viewTickets != 0 {
		k := st.TicketKeys()
		v.tickets.Store(&k)
	}
	if which&viewAudit != 0 {
		k := st.AuditKeys()
		v.audit.Store(&k)
	}
}
