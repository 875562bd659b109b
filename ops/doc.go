// Package ops is the operator surface of a Chimalli node: configuration
// (defaults ← file ← CHIMALLI_* environment ← command-line flags, loaded with
// koanf and validated into plain structs), logging, and the admin socket with
// its health endpoints and client.
//
// Library packages never see this package's types: cmd/node converts a
// validated Config into the structs of gateway, ratelimit and tofu.
//
// Logs never contain raw client IP addresses: the gateway logs a keyed hash
// of the address instead (see package events), and the default log level is
// "error".
package ops
