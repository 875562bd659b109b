package natsplane

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ExternalConfig configures a connection to a NATS run outside the node.
type ExternalConfig struct {
	// URL is one or more comma-separated server URLs (nats://, tls://).
	// Required.
	URL string
	// Name is the connection's name in the server's monitoring.
	Name string
	// CredsFile is a NATS credentials file (user JWT and NKey seed);
	// empty for none.
	CredsFile string
	// TLS, when not nil, is used for the connection (a tls:// URL without
	// it uses the system's roots and no client certificate).
	TLS *tls.Config
}

// Dial connects to an external NATS. It does not wait for the servers: a
// first connection that fails is retried in the background, as are later
// reconnections, forever; a publisher sees errors meanwhile. The caller
// closes the connection.
func Dial(cfg ExternalConfig) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: no URL")
	}
	opts := []nats.Option{nats.Name(cfg.Name), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1)}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", cfg.URL, err)
	}
	return nc, nil
}
