// Package pki is the cluster's public-key infrastructure: one cluster
// certificate authority, a certificate per node and an admin client
// certificate, and the mutual-TLS configurations built from them for Raft,
// leader forwarding, NATS and the admin API over TCP.
//
// Init writes a new cluster's files into a directory (what `chimalli cluster
// init` does); AddNode signs one more node with the existing authority, and
// Renew puts a fresh key and certificate in place of a node's or the admin's,
// keeping the old pair as <name>.crt.old and <name>.key.old. Load
// reads one identity's files (the CA certificate, a certificate and its key)
// and returns Credentials, whose ServerConfig and ClientConfig are TLS 1.3
// mutual-TLS configurations that trust only the cluster authority.
//
// Every certificate names its holder twice: the subject common name is the
// name, and a URI subject alternative name chimalli://node/<id> or
// chimalli://admin/<name> says what kind of holder it is. PeerIdentity reads
// that from the verified chain of a connection, never from an unverified
// certificate. Node certificates carry the extended key usages serverAuth
// and clientAuth; the admin certificate carries clientAuth only, so it can
// call a node but cannot pose as one.
//
// Keys are ECDSA P-256 in PKCS#8 PEM files with mode 0600; certificates are
// PEM files with mode 0644; the directory is 0700. The CA key signs new
// members: whoever holds it can join the cluster, so an operator should move
// ca.key offline once the nodes have their certificates.
package pki
