package natsplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// DefaultClusterName is the NATS cluster name, and the subject token under
// chimalli., when none is configured.
const DefaultClusterName = "chimalli"

// DefaultStartTimeout bounds Start when its context has no deadline.
const DefaultStartTimeout = 30 * time.Second

// Config configures one node's embedded nats-server.
type Config struct {
	// Name is the server's name: the node id. Required.
	Name string
	// ClusterName names the NATS cluster and is the second token of every
	// subject (chimalli.<cluster>.…); see ValidateClusterName. Empty means
	// DefaultClusterName.
	ClusterName string
	// StoreDir is JetStream's store, created 0700 if missing. Required.
	StoreDir string

	// ClientListen is the client port ("host:port", port 0 for any free
	// port); empty means none, the in-process connection only.
	ClientListen string
	// ClientTLS is the client port's TLS configuration: it must require
	// and verify a client certificate, since clients are authenticated by
	// it. Required with ClientListen.
	ClientTLS *tls.Config
	// Users map client certificates to users on the client port.
	Users []User

	// ClusterListen is the route port ("host:port", port 0 for any free
	// port); empty means a server of its own, JetStream standalone. It
	// needs ClientListen: nats-server starts its routes only once its
	// client listener is up.
	ClusterListen string
	// ClusterTLS serves and dials routes: it must hold a certificate valid
	// for both ends, trust the cluster authority as roots and as client
	// authorities, and require client certificates. Required with
	// ClusterListen.
	ClusterTLS *tls.Config
	// Routes are the route ports ("host:port") of every server of the
	// cluster, this one's included (a server ignores its own route); they
	// also tell JetStream how many servers to expect. At least two are
	// required with ClusterListen.
	Routes []string
	// ClusterAdvertise is the address ("host:port") the other servers are
	// told to dial for this server's routes; its host must be a name or
	// address of ClusterTLS's certificate, since they verify it. Empty
	// means the entry of Routes that names this server: Name with
	// ClusterListen's port, when there is one (see clusterAdvertise).
	ClusterAdvertise string
	// ClientAdvertise is the address ("host:port") clients are told for
	// this server's client port, a name of ClientTLS's certificate. Empty
	// means clients are told of no other server at all: they use the
	// addresses they were given.
	ClientAdvertise string

	// Logger receives nats-server's log lines: notices at info, and debug
	// lines only when the logger is enabled for debug. Nil discards them.
	Logger *slog.Logger
}

// Role is what a certificate's user may do on the client port.
type Role int

const (
	// RoleNode may publish and subscribe under chimalli.<cluster>. and use
	// the JetStream API, as the node's own in-process connection does; it
	// may answer ban requests on cmd.ban but not make them.
	RoleNode Role = iota + 1
	// RoleAdmin may do anything, ban requests on cmd.ban included: the
	// operator's user, and the identity to give a log analyser that
	// requests bans.
	RoleAdmin
)

// User maps one client certificate to a user (verify_and_map).
type User struct {
	// Cert is the certificate's identity as NATS matches it: a URI subject
	// alternative name in its string form (chimalli://node/n1), or a DNS
	// name or e-mail address of the certificate.
	Cert string
	// Role sets the user's permissions.
	Role Role
}

// ErrBadConfig is wrapped by New's errors for an invalid Config.
var ErrBadConfig = errors.New("invalid event plane configuration")

// ValidateClusterName checks a cluster name: 1 to 64 characters of A-Z,
// a-z, 0-9, '_' and '-', so it is one subject token (events.ValidateCluster).
func ValidateClusterName(name string) error {
	if events.ValidateCluster(name) != nil {
		return fmt.Errorf("cluster name %q: want 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'", name)
	}
	return nil
}

// Server is a node's embedded nats-server and its in-process connection.
// Build it with New, then Start, then Close.
type Server struct {
	cfg  Config
	opts *server.Options
	log  *logAdapter
	key  nkeys.KeyPair

	mu  sync.Mutex
	srv *server.Server
	nc  *nats.Conn
}

// New checks cfg and returns an unstarted server.
func New(cfg Config) (*Server, error) {
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	opts, err := serverOptions(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	key, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("nats: in-process key: %w", err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("nats: in-process key: %w", err)
	}
	opts.Nkeys = []*server.NkeyUser{{
		Nkey:                   pub,
		Permissions:            nodePermissions(cfg.ClusterName),
		AllowedConnectionTypes: map[string]struct{}{connTypeInProcess: {}},
	}}
	return &Server{cfg: cfg, opts: opts, log: newLogAdapter(cfg.Logger), key: key}, nil
}

// serverOptions turns cfg into nats-server options, without the
// in-process user.
func serverOptions(cfg *Config) (*server.Options, error) {
	if err := validateName(cfg.Name); err != nil {
		return nil, err
	}
	if err := ValidateClusterName(cfg.ClusterName); err != nil {
		return nil, err
	}
	if cfg.StoreDir == "" {
		return nil, errors.New("no store directory")
	}
	o := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // the node handles signals
		NoLog:      cfg.Logger == nil,
		DontListen: cfg.ClientListen == "",
		// Every client authenticates: by certificate on the port, by the
		// in-process key otherwise.
		NoAuthUser: "",
	}
	if cfg.ClientListen != "" {
		host, port, err := splitListen(cfg.ClientListen)
		if err != nil {
			return nil, fmt.Errorf("client listen: %w", err)
		}
		if err := checkMutualTLS(cfg.ClientTLS); err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		o.Host, o.Port = host, port
		if cfg.ClientAdvertise != "" {
			if err := checkAdvertise(cfg.ClientAdvertise, cfg.ClientTLS); err != nil {
				return nil, fmt.Errorf("client advertise: %w", err)
			}
			o.ClientAdvertise = cfg.ClientAdvertise
		}
		o.TLSConfig = cfg.ClientTLS
		o.TLSVerify = true
		o.TLSMap = true
		o.TLSTimeout = 5
		users, err := tlsUsers(cfg.Users, cfg.ClusterName)
		if err != nil {
			return nil, err
		}
		o.Users = users
	} else if len(cfg.Users) > 0 {
		return nil, errors.New("users given but no client port")
	} else if cfg.ClientAdvertise != "" {
		return nil, errors.New("client advertise given but no client port")
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitListen(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen: %w", err)
		}
		if err := checkMutualTLS(cfg.ClusterTLS); err != nil {
			return nil, fmt.Errorf("cluster TLS: %w", err)
		}
		if cfg.ClusterTLS.RootCAs == nil {
			return nil, errors.New("cluster TLS: no root authorities to verify the routes dialled")
		}
		if cfg.ClientListen == "" {
			// nats-server (v2.15.2) starts routing only once its client
			// listener is up: without one the routes never start.
			return nil, errors.New("cluster listen needs a client port too")
		}
		if len(cfg.Routes) < 2 {
			return nil, errors.New("cluster listen needs the routes of every server, this one's included (at least two)")
		}
		for _, r := range cfg.Routes {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return nil, fmt.Errorf("route %q: not host:port", r)
			}
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
		advertise := clusterAdvertise(cfg.ClusterAdvertise, cfg.Name, cfg.ClusterListen, cfg.Routes)
		if advertise != "" {
			if err := checkAdvertise(advertise, cfg.ClusterTLS); err != nil {
				return nil, fmt.Errorf("cluster advertise: %w", err)
			}
		}
		o.Cluster = server.ClusterOpts{
			Name: cfg.ClusterName, Host: host, Port: port,
			TLSConfig: cfg.ClusterTLS, TLSTimeout: 5,
			// Every route is listed, yet nats-server (v2.15.2) still
			// gossips each new route to the others, and has no option to
			// stop it. A server receiving that gossip dials the route as
			// an implicit one unless its address is one of its configured
			// routes (processImplicitRoute, hasThisRouteConfigured), and
			// without Advertise that address is the listen host or the IP
			// the route connection came from: in a container, an IP no
			// certificate names, so the TLS handshake fails, again and
			// again. Advertising the route list's own entry for this
			// server makes the gossiped address a configured route, so it
			// is never dialled.
			Advertise: advertise,
			// Without ClientAdvertise, a server tells its clients the
			// client URLs of the others by their interface IPs, which
			// they cannot verify either: tell them nothing then.
			NoAdvertise: cfg.ClientAdvertise == "",
		}
	} else if len(cfg.Routes) > 0 {
		return nil, errors.New("routes given but no cluster port")
	} else if cfg.ClusterAdvertise != "" {
		return nil, errors.New("cluster advertise given but no cluster port")
	}
	return o, nil
}

// validateName checks a server name: a node id, one subject token, by
// the cluster name's rule.
func validateName(name string) error {
	if events.ValidateCluster(name) != nil {
		return fmt.Errorf("server name %q: want a node id (A-Z, a-z, 0-9, '_', '-')", name)
	}
	return nil
}

// splitListen parses "host:port"; port 0 becomes nats-server's "any free
// port" (its own 0 means the default port).
func splitListen(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hp)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// clusterAdvertise returns the route address to advertise: adv when set,
// otherwise the entry of routes that is name with the port of listen
// (a compose service named after its node, listening on 0.0.0.0), or ""
// when there is none.
func clusterAdvertise(adv, name, listen string, routes []string) string {
	if adv != "" {
		return adv
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return ""
	}
	for _, r := range routes {
		if h, p, err := net.SplitHostPort(r); err == nil && p == port && strings.EqualFold(h, name) {
			return r
		}
	}
	return ""
}

// checkAdvertise checks that adv is host:port with a host that c's
// certificate names, so that whoever dials it can verify it. A
// certificate chosen per connection (GetCertificate) is not checked.
func checkAdvertise(adv string, c *tls.Config) error {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return fmt.Errorf("%q: not host:port", adv)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", adv)
	}
	if c == nil || len(c.Certificates) == 0 || len(c.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := c.Certificates[0].Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("certificate: %w", err)
		}
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("%q: %w", adv, err)
	}
	return nil
}

// checkMutualTLS refuses a TLS configuration that would let a client in
// without a verified certificate.
func checkMutualTLS(c *tls.Config) error {
	switch {
	case c == nil:
		return errors.New("required")
	case c.ClientAuth != tls.RequireAndVerifyClientCert:
		return errors.New("must require and verify client certificates")
	case c.ClientCAs == nil:
		return errors.New("no client certificate authorities")
	case len(c.Certificates) == 0 && c.GetCertificate == nil:
		return errors.New("no certificate")
	}
	return nil
}

// Start starts the server and opens the in-process connection. It returns
// once the server accepts connections and JetStream runs; clustered
// JetStream may still be electing its leaders (EnsureStreams waits for
// them). It stops at ctx's deadline, or after DefaultStartTimeout.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("nats: already started")
	}
	if err := os.MkdirAll(s.cfg.StoreDir, 0o700); err != nil {
		return fmt.Errorf("nats: store dir: %w", err)
	}
	srv, err := server.NewServer(s.opts)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	srv.SetLoggerV2(s.log, s.log.debug(), false, false)
	defer func() {
		if err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}()
	go srv.Start()
	if err := s.waitReady(ctx, srv); err != nil {
		return err
	}
	if !srv.JetStreamEnabled() {
		return errors.New("nats: start: JetStream did not start")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(s.cfg.Name+"/in-process"),
		nats.Nkey(mustPublic(s.key), s.key.Sign), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: in-process connection: %w", err)
	}
	s.srv, s.nc = srv, nc
	return nil
}

// waitReady waits until srv accepts connections, or reports the fatal
// error that stopped its start (a port in use), or ctx ends.
func (s *Server) waitReady(ctx context.Context, srv *server.Server) error {
	deadline := time.Now().Add(DefaultStartTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for {
		// ReadyForConnections polls every 25 ms for at most the time
		// given; a fatal error does not end it, so ask in short steps.
		ready := srv.ReadyForConnections(100 * time.Millisecond)
		if f := s.log.fatal(); f != "" {
			return fmt.Errorf("nats: start: %s", f)
		}
		if ready {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("nats: start: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("nats: start: not ready in time")
		}
	}
}

func mustPublic(k nkeys.KeyPair) string {
	pub, _ := k.PublicKey() // checked in New
	return pub
}

// Conn returns the in-process connection, nil before Start. Its user has
// RoleNode's permissions. Callers must not close it; Close does.
func (s *Server) Conn() *nats.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nc
}

// ClientAddr returns the address of the client port, nil when there is
// none or before Start.
func (s *Server) ClientAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil || s.opts.DontListen {
		return nil
	}
	return s.srv.Addr()
}

// ClusterAddr returns the address of the route port, nil when there is
// none or before Start.
func (s *Server) ClusterAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil || s.cfg.ClusterListen == "" {
		return nil
	}
	if a := s.srv.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// Replicas returns how many copies of each stream the cluster keeps:
// min(3, number of routes), 1 for a server of its own.
func (s *Server) Replicas() int { return ReplicasFor(len(s.cfg.Routes)) }

// ReplicasFor returns the stream replicas for a cluster of n servers:
// min(3, n), at least 1.
func ReplicasFor(n int) int { return min(max(n, 1), 3) }

// ClusterName returns the cluster name in use.
func (s *Server) ClusterName() string { return s.cfg.ClusterName }

// Close closes the in-process connection and shuts the server down; a
// clustered server first hands its JetStream leaderships to its peers.
// It is safe to call more than once, and before Start.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, nc := s.srv, s.nc
	s.srv, s.nc = nil, nil
	s.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	return nil
}
