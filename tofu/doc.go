// Package tofu implements trust on first use for Chimalli: certificate and
// SPKI fingerprints, certificate generation, pins and the first-use decision
// as pure logic over a Store, and the in-memory and file-backed stores used
// by a single node and by the `chimalli get` client (its known-hosts file).
//
// The Raft-replicated store (package raftstore) implements the same Store
// interface, so every node of a cluster makes the same first-use decision.
package tofu
