package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// Banned reports whether addr is banned at now, from this node's applied
// state: no lock, no allocation. It implements gateway.BanView.
// Auto-bans this node proposed and has not seen committed yet count too:
// the node that saw the abuse enforces at once.
func (n *Node) Banned(addr netip.Addr, now time.Time) bool {
	return n.views.bans.Load().Banned(addr, now) || n.pending.banned(addr, now)
}

// BanSet returns the current ban view.
func (n *Node) BanSet() *raftstore.BanSet { return n.views.bans.Load() }

// RuleSet returns the current view of the replicated access rules.
func (n *Node) RuleSet() *RuleSet { return n.views.rules.Load() }

// TicketKeys returns the session-ticket keys, newest last.
func (n *Node) TicketKeys() []raftstore.TicketKeyData {
	if k := n.views.tickets.Load(); k != nil {
		return *k
	}
	return nil
}

// AuditKeys returns the keys that hash client addresses, newest (current)
// last. The caller must not modify them.
func (n *Node) AuditKeys() []raftstore.AuditKeyData {
	if k := n.views.audit.Load(); k != nil {
		return *k
	}
	return nil
}

// CurrentAuditKey returns the cluster's current audit key and its id, from
// this node's applied state: no lock, no allocation; ok is false until the
// first key has been applied. The caller must not modify key.
func (n *Node) CurrentAuditKey() (id string, key []byte, ok bool) {
	k := n.views.audit.Load()
	if k == nil || len(*k) == 0 {
		return "", nil, false
	}
	cur := &(*k)[len(*k)-1]
	return cur.ID, cur.Key[:], true
}

// PinStore returns the replicated pin store: lookups read this node's
// view, claims commit through the leader before they return.
func (n *Node) PinStore() *PinStore { return &PinStore{n: n} }

// ActiveBans returns the bans active at now in this node's applied state,
// sorted by prefix.
func (n *Node) ActiveBans(now time.Time) []raftstore.Ban {
	all := n.views.bans.Load().Bans()
	out := all[:0]
	for _, b := range all {
		if b.ActiveAt(now) {
			out = append(out, b)
		}
	}
	return out
}

// Rules returns the replicated access rules this node has applied.
func (n *Node) Rules() []raftstore.Rule { return slices.Clone(n.views.rules.Load().Rules()) }

// Pins returns the pins this node has applied, sorted by kind then subject.
func (n *Node) Pins() []tofu.Pin {
	var out []tofu.Pin
	n.fsm.read(func(st *raftstore.State) { out = st.Pins() })
	return out
}

// PinStore is the Raft-replicated tofu.Store.
type PinStore struct{ n *Node }

var _ tofu.Store = (*PinStore)(nil)

// Lookup returns the pin in force for key on this node.
func (s *PinStore) Lookup(key tofu.PinKey) (tofu.Pin, bool) {
	m := s.n.views.pins.Load()
	if m == nil {
		return tofu.Pin{}, false
	}
	p, ok := (*m)[key]
	return p, ok
}

// Claim commits a first use of p.Key by p.Identity through the leader and
// returns the pin in force afterwards: p itself (as given) when this claim
// won, the winner's pin otherwise. It blocks until the claim commits or
// ctx ends; a node cut off from the majority cannot commit, so its claims
// fail with ctx's error (wrapped with ErrNoLeader).
func (s *PinStore) Claim(ctx context.Context, p tofu.Pin) (tofu.Pin, error) {
	if err := p.Validate(); err != nil {
		return tofu.Pin{}, err
	}
	res, err := s.n.Apply(ctx, raftstore.Command{
		Op: raftstore.OpTrustClaim, PinKind: p.Key.Kind, Subject: p.Key.Scope, Identity: p.Identity, NotAfter: p.NotAfter,
	})
	if err != nil {
		return tofu.Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	if res.Changed && res.Pin.Identity == p.Identity {
		return p, nil
	}
	if res.Pin.Key.Kind.Valid() {
		return res.Pin, nil
	}
	if got, ok := s.Lookup(p.Key); ok {
		return got, nil
	}
	return tofu.Pin{}, fmt.Errorf("claim %v: no pin after commit at %d", p.Key, res.Index)
}
