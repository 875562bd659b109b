// Package gateway is the Chimalli node's data plane: listeners, TLS
// termination, the Gemini and Titan protocol adapter, request parsing and
// path canonicalisation, the ordered chain of security layers, and the
// handlers (document root, upstream proxy) that run once a request is
// allowed.
//
// Layers never speak Gemini. Each returns a Decision carrying an abstract
// Reason (access denied, rate limited, certificate required, …); the Gemini
// adapter maps reasons to status codes in one place (see Status). A second
// protocol adapter would map the same reasons to its own statuses.
//
// The package owns the small interfaces it consumes (Limiter, BanView,
// AbuseReporter, ClientHasher, AuditSink, ConflictSink) and consumes tofu.Store for
// certificate pins; cmd/node plugs in the real implementations. gateway
// never imports raftstore or events.
package gateway
