// Package raftstore holds Chimalli's shared enforcement state and the
// read-only views the gateway consumes.
//
// The state is event-sourced: every change is a typed event with the time
// the writer stamped on it, and the state is a deterministic fold of those
// events, so replaying the same events gives the same state on every node.
// Reads on the request path never take a lock: the state publishes an
// immutable view (an atomic pointer) after each applied event.
//
// What exists today is the ban state: BanSet, the immutable view that
// implements gateway.BanView; BanState, the fold of BanAdded and BanLifted
// events; and Bans, a node-local store that turns auto-ban reports and
// operator commands into events, applies them and publishes the view.
// An operator's ban is a BanCommand, whose Validate is the one rule every
// path applies (no zero or negative length, no prefix wider than /16 or
// /32 without Force, a reason token); lifting a ban tells a Forgiver (the
// node's rate limiter) to start the clients inside it afresh.
// With the cluster-state issue the same events travel through
// hashicorp/raft (a mutual-TLS stream layer, snapshots, leader forwarding)
// instead of being applied locally, and the access rules and TOFU pins
// join them. Until then a node keeps its pins in files (tofu.FileStore)
// and its bans in memory. See DESIGN.md §2.
package raftstore
