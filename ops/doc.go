// Package ops is the operator surface of a Chimalli node, one sub-package
// per concern:
//
//   - ops/config: the configuration (defaults ← file ← CHIMALLI_* environment
//     ← command-line flags, loaded with koanf and validated into plain
//     structs);
//   - ops/admin: the admin API on a unix socket (health, bans, cluster
//     commands) and its client;
//   - ops/logging: the node's slog logger;
//   - ops/pki: the cluster authority, node and admin certificates, and the
//     mutual-TLS configurations built from them;
//   - ops/bench: the load generator behind `chimalli bench`;
//   - ops/testlog: test servers' logs to t.Log.
//
// Library packages never see these packages' types: cmd/node converts a
// validated config.Config into the structs of gateway, raftstore,
// ratelimit and tofu.
//
// Logs never contain raw client IP addresses: the gateway logs a keyed hash
// of the address instead (see package events), and the default log level is
// "error".
package ops
