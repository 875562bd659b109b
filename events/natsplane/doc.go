// Package natsplane runs the cluster's event plane on NATS with JetStream:
// an embedded nats-server in every node, or a connection to an external
// NATS by URL, and the JetStream streams the node publishes into.
//
// A Server is one node's embedded nats-server. With no ports configured it
// listens nowhere: the node reaches it through an in-process connection
// (Conn), and JetStream keeps its store under the data directory. With a
// client port, clients speak TLS only and are authenticated by their
// certificate (NATS's verify_and_map): each Config.Users entry maps a
// certificate's URI subject alternative name to a user with the
// permissions of its Role. With a cluster port the servers form one NATS
// cluster over TLS routes, named by their node ids, and JetStream runs
// clustered (its own Raft groups, separate from the node's state log).
//
// The in-process connection authenticates with an NKey drawn at start and
// held only in memory; its user may connect in process only, so the key
// is of no use on a network port even if it leaked.
//
// The package never reads the cluster's certificate files: the caller
// (cmd/node) hands it ready TLS configurations.
//
// EnsureStreams creates or updates, idempotently, the two streams:
// CHIMALLI_EVENTS (committed state events, long retention) and
// CHIMALLI_AUDIT (audit records, limited by age and size). Subjects live
// under chimalli.<cluster>.; see Subjects.
package natsplane
