// Package admin is a node's admin API, served on a unix socket (0600) as
// HTTP with uniform JSON errors: /healthz, /readyz and the operator
// commands (/bans …), with the client functions the CLI uses. Handlers
// call small interfaces this package defines; cmd/node plugs the node's
// state into them.
package admin
