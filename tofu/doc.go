// Package tofu implements trust on first use for Chimalli: certificate and
// SPKI fingerprints, certificate generation, pins and the first-use decision
// as pure logic over a Store, and the in-memory and file-backed stores used
// by a single node and by the `chimalli get` client (its known-hosts file).
//
// Store is implemented by MemStore (tests and single-process use) and
// FileStore (a node's pins and the client's known hosts); a node keeps its
// pins in a FileStore today. A Raft-replicated Store, so that every node of
// a cluster makes the same first-use decision, is planned for package
// raftstore and does not exist yet.
package tofu
