// Package raftstore is the domain of Chimalli's shared enforcement state:
// bans, replicated access rules, TOFU pins, TLS session-ticket keys and
// the keys that hash client addresses (audit keys), as a pure, deterministic fold of typed, versioned events.
//
// Commands (Command, BanCommand) are what callers ask for; the leader
// validates one against the state it has applied and turns it into an
// Event, stamped with its clock (Command.Event). State.Apply folds events
// without reading a clock or the configuration, so every node that applies
// the same log holds the same state, byte for byte (State.WriteSnapshot,
// State.Hash). BanSet is the immutable ban view the gateway reads at
// accept, lock-free.
//
// This package knows nothing of Raft: package raftstore/cluster is the
// adapter that runs the fold as hashicorp/raft's FSM, with the mutual-TLS
// cluster port and leader forwarding. Bans is the node-local store from
// before the cluster, kept for the auto-ban policy's tests. See DESIGN.md.
package raftstore
