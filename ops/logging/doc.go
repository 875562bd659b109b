// Package logging builds a node's slog logger from the configured level
// (error by default) and format (json or text).
package logging
