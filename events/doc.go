// Package events is Chimalli's event plane: the event schema, IP hashing
// for privacy and the audit log. Package events/natsplane runs the
// embedded NATS server and its JetStream streams; publishers and
// subscribers build on it.
//
// Raw client IPs never leave a node. Everything that names a client in a
// log line or an event carries IPHasher output instead: a keyed
// HMAC-SHA256 of the address, truncated, prefixed with the key id so a
// reader knows which key produced it. The key is the cluster's audit key,
// which the Raft leader rotates (a KeySource: NewIPHasherFrom), so every
// node hashes a client alike; until the first one commits, a node hashes
// with a random key of its own, drawn at start.
//
// An AuditRecord describes one client connection: refused at accept, or
// answered. Its JSON form (AppendJSON, ParseAuditRecord) is schema
// AuditVersion, documented in docs/events.md; records never hold a raw
// address or a query. An AuditLog writes records as JSON lines to the
// node's audit file without ever blocking the request path.
//
// A StatePublisher publishes the cluster's committed state events to a
// JetStream stream while its node leads, as CloudEvents in the binary
// mode of the NATS binding (StateMessage): exactly once and in commit
// order, resuming from the stream's last Raft index rather than from
// memory. It reads the Raft log through CommittedLog, which
// raftstore/cluster.Node implements; prefixes are published as keyed
// hashes, and ticket keys not at all.
package events
