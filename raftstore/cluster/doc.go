// Package cluster runs the state of package raftstore on hashicorp/raft:
// the Raft adapter of the event-sourced state. It holds the FSM (Apply,
// Snapshot, Restore over raftstore.State), the log and snapshot stores
// (raft-boltdb and files under the node's data dir), the mutual-TLS
// cluster port (one TCP port; Raft and command forwarding told apart by
// ALPN), bootstrap, join and leave, and Apply, which commits a command
// through the leader from any node.
//
// Reads (Banned, BanSet, Read) see this node's applied state, which may
// lag the leader. A linearizable read (`ban ls --consistent`) calls
// ReadIndex first: the leader confirms its leadership with a committed
// barrier and the read waits until this node has applied every write
// committed before it. linearizability_test.go checks bans, lifts and
// both kinds of read against a sequential model with porcupine while the
// leader is killed and restarted.
//
// The domain (events, the fold, the views' types, validation) lives in
// package raftstore and knows nothing of Raft; this package knows nothing
// of configuration files or certificates on disk: cmd/node hands it TLS
// configurations and a function naming a verified peer. See
// raftstore/DESIGN.md.
package cluster
