// Package cluster runs the state of package raftstore on hashicorp/raft:
// the Raft adapter of the event-sourced state. It holds the FSM (Apply,
// Snapshot, Restore over raftstore.State), the log and snapshot stores
// (raft-boltdb and files under the node's data dir), the mutual-TLS
// cluster port (one TCP port; Raft and command forwarding told apart by
// ALPN), bootstrap, join and leave, and Apply, which commits a command
// through the leader from any node.
//
// The domain (events, the fold, the views' types, validation) lives in
// package raftstore and knows nothing of Raft; this package knows nothing
// of configuration files or certificates on disk: cmd/node hands it TLS
// configurations and a function naming a verified peer. See
// raftstore/DESIGN.md.
package cluster
