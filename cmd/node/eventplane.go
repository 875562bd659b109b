package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamsStartTimeout bounds ensuring the streams of a node of its own
// before it serves; a clustered or external NATS gets them in the
// background, for as long as the node runs.
const streamsStartTimeout = 10 * time.Second

// eventPlane is the node's NATS: its embedded server (nil with nats.url)
// and the connection it publishes on.
type eventPlane struct {
	server *natsplane.Server
	conn   *nats.Conn // the server's in-process connection, or to nats.url
	stop   context.CancelFunc
	done   chan struct{} // closed when the background stream set-up ends
	state  *events.StatePublisher
	// subs are the plane's other users (the cmd.ban responder, the
	// trust-conflict publisher): closed first, in reverse order.
	subs  []io.Closer
	audit *events.AuditPublisher
	log   *slog.Logger // set with audit
	// conflicts is the trust-conflict publisher (also in subs), for its
	// counters.
	conflicts *events.ConflictPublisher
}

// auditCloseTimeout bounds the audit publisher's Close: what JetStream has
// not acknowledged by then stays in the spool for the next start.
const auditCloseTimeout = 5 * time.Second

// publishAudit starts publishing this node's audit records to
// CHIMALLI_AUDIT (chimalli.<cluster>.audit.<node>) from a bounded buffer,
// spooling them under <data_dir>/audit-spool while JetStream cannot take
// them: see events.AuditPublisher.
func (p *eventPlane) publishAudit(cfg *config.Config, id string, logger *slog.Logger) error {
	ap, err := events.OpenAuditPublisher(events.AuditPublisherConfig{
		Conn: p.conn, Subject: natsplane.AuditSubject(cfg.NATS.ClusterName, id), Node: id,
		SpoolDir: cfg.AuditSpoolDir(), SpoolMaxBytes: int64(cfg.Audit.SpoolMaxBytes),
		Buffer: cfg.Audit.Buffer, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	p.audit, p.log = ap, logger
	return nil
}

// publishState starts publishing the cluster's committed state events
// (while this node leads) on the plane's connection, exactly once, in
// commit order: see events.StatePublisher. It keeps retrying until the
// stream exists.
func (p *eventPlane) publishState(ctx context.Context, cfg *config.Config, log events.CommittedLog, hasher raftstore.AddrHasher, logger *slog.Logger) error {
	sp, err := events.NewStatePublisher(events.StatePublisherConfig{
		Cluster: cfg.NATS.ClusterName, Conn: p.conn, Log: log, Hasher: hasher, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("state events: %w", err)
	}
	if err := sp.Open(ctx); err != nil {
		return fmt.Errorf("state events: %w", err)
	}
	p.state = sp
	return nil
}

// startEventPlane starts the embedded nats-server (or connects to
// nats.url) and ensures the streams: at once for a server of its own, in
// the background otherwise (a clustered JetStream needs its peers).
func startEventPlane(ctx context.Context, cfg *config.Config, id string, logger *slog.Logger) (_ *eventPlane, err error) {
	p := &eventPlane{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if cfg.NATSEmbedded() {
		nc, err := embeddedNATSConfig(cfg, id, logger)
		if err != nil {
			return nil, err
		}
		if p.server, err = natsplane.New(nc); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		sctx, cancel := context.WithTimeout(ctx, natsplane.DefaultStartTimeout)
		err = p.server.Start(sctx)
		cancel()
		if err != nil {
			return nil, err
		}
		p.conn = p.server.Conn()
	} else {
		ext, err := externalNATSConfig(cfg, id)
		if err != nil {
			return nil, err
		}
		if p.conn, err = natsplane.Dial(ext); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(p.conn)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	streams := natsplane.StreamsConfig{
		ClusterName:   cfg.NATS.ClusterName,
		Replicas:      cfg.NATSReplicas(),
		EventsMaxAge:  cfg.NATS.EventsMaxAge,
		AuditMaxAge:   cfg.Audit.StreamMaxAge,
		AuditMaxBytes: int64(cfg.Audit.StreamMaxBytes),
		Duplicates:    cfg.NATS.DuplicateWindow,
	}
	retry := func(err error) { logger.Debug("nats: streams not ready yet", "err", err) }
	if cfg.NATSEmbedded() && cfg.NATS.ClusterListen == "" {
		sctx, cancel := context.WithTimeout(ctx, streamsStartTimeout)
		err := natsplane.WaitStreams(sctx, js, streams, retry)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		return p, nil
	}
	bg, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		if err := natsplane.WaitStreams(bg, js, streams, retry); err != nil {
			if bg.Err() == nil {
				logger.Error("nats: streams", "err", err)
			}
			return
		}
		logger.Info("nats: streams ready", "replicas", streams.Replicas)
	}()
	return p, nil
}

// embeddedNATSConfig builds the embedded server's configuration; its
// ports get TLS configurations from this node's cluster credentials.
func embeddedNATSConfig(cfg *config.Config, id string, logger *slog.Logger) (natsplane.Config, error) {
	n := cfg.NATS
	nc := natsplane.Config{
		Name: id, ClusterName: n.ClusterName, StoreDir: cfg.NATSDir(), Logger: logger,
		ClientListen: n.Listen, ClusterListen: n.ClusterListen, Routes: n.Routes,
		ClientAdvertise: n.Advertise, ClusterAdvertise: n.ClusterAdvertise,
	}
	if n.Listen == "" && n.ClusterListen == "" {
		return nc, nil
	}
	cred, err := nodeCredentials(cfg, id)
	if err != nil {
		return nc, err
	}
	if n.Listen != "" {
		if nc.ClientTLS, err = cred.ServerConfig(pki.KindNode, pki.KindAdmin); err != nil {
			return nc, fmt.Errorf("nats.listen: %w", err)
		}
		nc.Users = natsUsers(cfg, id)
	}
	if n.ClusterListen != "" {
		if nc.ClusterTLS, err = cred.PeerConfig(); err != nil {
			return nc, fmt.Errorf("nats.cluster_listen: %w", err)
		}
	}
	return nc, nil
}

// natsUsers maps the certificates the client port admits to users: the
// admin's, this node's and those of the nodes in cluster.peers, by their
// chimalli:// names.
func natsUsers(cfg *config.Config, id string) []natsplane.User {
	users := []natsplane.User{
		{Cert: pki.Identity{Kind: pki.KindAdmin, Name: pki.AdminName}.URI().String(), Role: natsplane.RoleAdmin},
		{Cert: pki.Identity{Kind: pki.KindNode, Name: id}.URI().String(), Role: natsplane.RoleNode},
	}
	peers, _ := cfg.ClusterPeers() // validated
	for _, p := range peers {
		if p.ID != id {
			users = append(users, natsplane.User{Cert: pki.Identity{Kind: pki.KindNode, Name: p.ID}.URI().String(), Role: natsplane.RoleNode})
		}
	}
	return users
}

// externalNATSConfig builds the connection to nats.url.
func externalNATSConfig(cfg *config.Config, id string) (natsplane.ExternalConfig, error) {
	n := cfg.NATS
	ext := natsplane.ExternalConfig{URL: n.URL, Name: "chimalli/" + id, CredsFile: n.Creds}
	if n.TLSCA == "" && n.TLSCert == "" {
		return ext, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.TLSCA != "" {
		pem, err := os.ReadFile(n.TLSCA)
		if err != nil {
			return ext, fmt.Errorf("nats.tls_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return ext, fmt.Errorf("nats.tls_ca: %s: no PEM certificate", n.TLSCA)
		}
	}
	if n.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(n.TLSCert, n.TLSKey)
		if err != nil {
			return ext, fmt.Errorf("nats.tls_cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	ext.TLS = tc
	return ext, nil
}

// Conn returns the connection the node publishes on.
func (p *eventPlane) Conn() *nats.Conn { return p.conn }

// clientAddr returns the embedded server's client port, nil when none.
func (p *eventPlane) clientAddr() net.Addr {
	if p == nil || p.server == nil {
		return nil
	}
	return p.server.ClientAddr()
}

// Close stops the stream set-up and closes the connection and the
// embedded server.
func (p *eventPlane) Close() error {
	for i := len(p.subs) - 1; i >= 0; i-- {
		p.subs[i].Close()
	}
	if p.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
		err := p.audit.Close(ctx)
		cancel()
		if err != nil {
			p.log.Warn("audit: records left in the spool for the next start", "err", err)
		}
	}
	if p.state != nil {
		p.state.Close()
	}
	if p.stop != nil {
		p.stop()
		<-p.done
	}
	if p.server != nil {
		return p.server.Close()
	}
	if p.conn != nil {
		p.conn.Close()
	}
	return nil
}
