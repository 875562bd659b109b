package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
)

// Limits bound what one client or all clients together can make the node
// hold or read.
type Limits struct {
	HandshakeTimeout time.Duration // TLS handshake, from accept
	RequestTimeout   time.Duration // reading the request line (slowloris), and each read of a Titan body
	DecideTimeout    time.Duration // the request-time layers, a TOFU claim's commit included
	WriteTimeout     time.Duration // each write to a client that stops reading
	MaxRequestBytes  int           // request line without CRLF; at most MaxRequestLine
	MaxConns         int           // connections held at once, all clients
	MaxConnsPerIP    int           // connections held at once per client key (IPv4 /32, IPv6 /64)
	MaxTitanBytes    int64         // default upload cap for routes that set none
}

// DefaultLimits returns the limits of DESIGN.md §6.
func DefaultLimits() Limits {
	return Limits{
		HandshakeTimeout: 5 * time.Second,
		RequestTimeout:   5 * time.Second,
		DecideTimeout:    5 * time.Second,
		WriteTimeout:     30 * time.Second,
		MaxRequestBytes:  MaxRequestLine,
		MaxConns:         10000,
		MaxConnsPerIP:    32,
		MaxTitanBytes:    10 << 20,
	}
}

// Config is everything a Server needs. cmd/node builds it from the
// operator's configuration.
type Config struct {
	// Listen is the TCP address Open listens on, e.g. "127.0.0.1:1965";
	// see Listen for the address families it covers.
	Listen string
	// Hosts are the virtual hosts; the first is the default. At least one.
	Hosts  []Host
	Limits Limits
	// Layers are the security layers; see Layers.
	Layers Layers
	// Hasher hashes client addresses for logs. Nil disables client fields in logs.
	Hasher ClientHasher
	// Audit receives an Outcome per refusal at accept and per answered
	// request. Nil audits nothing.
	Audit AuditSink
	// Logger receives request logs at info and problems at warn/error. Nil discards.
	Logger *slog.Logger
	// KeyExchanges are the TLS key exchange groups the listener accepts
	// (crypto/tls chooses among them in its own order of preference); nil
	// means crypto/tls's default set, with the post-quantum hybrid
	// X25519MLKEM768 preferred.
	KeyExchanges []tls.CurveID
	// CertReloadInterval is how often certificate files are checked for
	// changes. Zero means 5 s; negative disables polling (ReloadCertificates
	// still works, e.g. on SIGHUP).
	CertReloadInterval time.Duration
	// Sessions governs TLS session resumption; the zero value resumes
	// sessions with the default lifetimes and local ticket keys.
	Sessions SessionPolicy
}

// Server is one Gemini listener with its virtual hosts and layers.
// Lifecycle: New, then Open, then Close.
type Server struct {
	cfg    Config
	lim    Limits
	layers *Layers
	hosts  []*vhost
	byName map[string]*vhost
	tlsCfg *tls.Config
	// sessions is cfg.Sessions with its defaults; tickets seals and opens
	// session tickets with its keys (nil when sessions are disabled).
	sessions SessionPolicy
	tickets  *ticketer
	log      *slog.Logger
	now      func() time.Time

	ln     net.Listener
	port   int
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop, cert poller and connections

	conns connTable
	stats counters
}

// ErrServerClosed is returned by Open and Serve on a server that has
// already been started (and perhaps closed): a Server serves once.
var ErrServerClosed = errors.New("server closed")

// New validates cfg and returns an unstarted Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("gateway: no hosts")
	}
	lim := cfg.Limits
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	if err := lim.validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Server{cfg: cfg, lim: lim, layers: &cfg.Layers, byName: map[string]*vhost{}, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.now = cfg.Layers.Now
	if s.now == nil {
		s.now = time.Now
	}
	for _, h := range cfg.Hosts {
		v, err := compileHost(h, lim.MaxTitanBytes)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		for _, n := range v.names {
			if _, dup := s.byName[n]; dup {
				return nil, fmt.Errorf("gateway: host name %q served twice", n)
			}
			s.byName[n] = v
		}
		s.hosts = append(s.hosts, v)
	}
	if !cfg.Sessions.Disabled {
		sp, err := cfg.Sessions.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		s.sessions, s.tickets = sp, &ticketer{keys: sp.Keys}
	}
	s.tlsCfg = s.newTLSConfig()
	s.conns.init(lim.MaxConns, lim.MaxConnsPerIP)
	return s, nil
}

func (l Limits) validate() error {
	var errs []error
	if l.HandshakeTimeout <= 0 || l.RequestTimeout <= 0 || l.DecideTimeout <= 0 || l.WriteTimeout <= 0 {
		errs = append(errs, errors.New("limits: timeouts must be > 0"))
	}
	if l.MaxRequestBytes < 1 || l.MaxRequestBytes > MaxRequestLine {
		errs = append(errs, fmt.Errorf("limits: max request bytes must be 1..%d", MaxRequestLine))
	}
	if l.MaxConns < 1 || l.MaxConnsPerIP < 1 {
		errs = append(errs, errors.New("limits: connection caps must be ≥ 1"))
	}
	if l.MaxTitanBytes < 0 {
		errs = append(errs, errors.New("limits: max titan bytes must be ≥ 0"))
	}
	return errors.Join(errs...)
}

func (s *Server) newTLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		Time:       s.now,
		// Any client certificate is accepted at the handshake, self-signed
		// included; validity and trust are checked per route by the layers.
		ClientAuth:       tls.RequestClientCert,
		GetCertificate:   s.getCertificate,
		CurvePreferences: s.cfg.KeyExchanges,
		// TLS 1.2 suites: forward-secret AEAD only. TLS 1.3 is preferred
		// by crypto/tls whenever the client offers it.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
	}
	// Session tickets follow SessionPolicy, applied per handshake by
	// configForClient; crypto/tls's own tickets (7 days, keys rotated
	// daily, client certificates carried over) are never issued.
	if s.tickets == nil {
		c.SessionTicketsDisabled = true
	} else {
		c.GetConfigForClient = s.configForClient
	}
	return c
}

func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.hostFor(hello.ServerName).cert.get(), nil
}

// hostFor returns the virtual host for a TLS server name; the default host
// for none or an unknown one.
func (s *Server) hostFor(sni string) *vhost {
	if sni != "" {
		if v, ok := s.byName[sni]; ok {
			return v
		}
		if n, err := NormalizeHost(sni); err == nil {
			if v, ok := s.byName[n]; ok {
				return v
			}
		}
	}
	return s.hosts[0]
}

// Open listens on cfg.Listen (see Listen) and starts serving in the
// background.
func (s *Server) Open(ctx context.Context) error {
	ln, err := Listen(ctx, s.cfg.Listen)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve starts serving on ln in the background; the server owns ln from
// now on. Open calls it; tests may pass their own listener.
func (s *Server) Serve(ln net.Listener) error {
	if s.ctx != nil {
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		s.port = int(ap.Port())
	}
	for _, v := range s.hosts {
		if len(v.ports) == 0 {
			v.ports = []int{s.port}
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	if iv := s.cfg.CertReloadInterval; iv >= 0 {
		if iv == 0 {
			iv = 5 * time.Second
		}
		s.wg.Add(1)
		go s.pollCertificates(iv)
	}
	return nil
}

// Addr returns the listening address, or nil before Open.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, drops connections that have not sent a request
// yet, lets requests in flight finish until ctx is done, then closes the
// rest. It returns ctx.Err() if it had to force. Close is idempotent: on a
// server never opened, or already closed, it returns nil, so a deferred
// Close after an explicit one is harmless.
func (s *Server) Close(ctx context.Context) error {
	if s.ctx == nil {
		return nil
	}
	s.cancel()
	s.ln.Close()
	s.conns.dropIdle()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.conns.closeAll()
		<-done
		return ctx.Err()
	}
}

// ReloadCertificates re-reads every host's certificate files that changed.
// A host whose files fail to load keeps its previous certificate; the
// errors are returned joined.
func (s *Server) ReloadCertificates() error {
	var errs []error
	for _, v := range s.hosts {
		changed, err := v.cert.reload(false)
		if err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", v.name, err))
			continue
		}
		if changed {
			s.log.Info("certificate reloaded", "host", v.name)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) pollCertificates(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.ReloadCertificates(); err != nil {
				s.log.Error("certificate reload", "err", err)
			}
		}
	}
}

// acceptConns is the portable accept loop: net.Listener.Accept, then the
// accept-time layers on a net.Conn. acceptLoop (accept_linux.go,
// accept_other.go) uses it for any listener it cannot accept on directly.
func (s *Server) acceptConns() {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !s.acceptFailed(err, &backoff) {
				return
			}
			continue
		}
		backoff = 0
		addr := remoteAddrPort(c)
		adm, key, refused := s.admit(addr.Addr())
		if refused != ReasonNone {
			refuse(c)
			continue
		}
		s.serve(c, addr, key, adm)
	}
}

// acceptFailed handles an accept error and reports whether to keep
// accepting. Out of file descriptors and the like: close nothing, back off
// (5 ms doubling to 1 s), keep serving. A closed listener or a cancelled
// server ends the loop.
func (s *Server) acceptFailed(err error, backoff *time.Duration) bool {
	if s.ctx.Err() != nil {
		return false
	}
	var ne net.Error
	if !errors.As(err, &ne) || errors.Is(err, net.ErrClosed) {
		s.log.Error("accept loop stopped", "err", err)
		return false
	}
	*backoff = min(max(*backoff*2, 5*time.Millisecond), time.Second)
	s.log.Error("accept", "err", err, "retry_in", *backoff)
	select {
	case <-time.After(*backoff):
		return true
	case <-s.ctx.Done():
		return false
	}
}

// admit runs the accept-time layers and the connection caps for a client
// at addr, on the accept goroutine and before any net.Conn, goroutine or
// handshake exists for it. It counts the connection, and the refusal when
// it returns a reason other than ReasonNone; on ReasonNone the caller holds
// a slot in s.conns for key and must pass it to serve or release it.
func (s *Server) admit(addr netip.Addr) (Admission, ratelimit.Key, Reason) {
	s.stats.accepted.Add(1)
	now := s.now()
	adm := s.layers.Admit(addr, now)
	if adm.Reason != ReasonNone {
		s.stats.refused[adm.Reason].Add(1)
		s.auditRefusal(addr, adm.Reason, now)
		return adm, ratelimit.Key{}, adm.Reason
	}
	key := ratelimit.KeyOf(addr, 32, 64)
	if !s.conns.acquire(key) {
		s.stats.refused[ReasonConnLimit].Add(1)
		s.auditRefusal(addr, ReasonConnLimit, now)
		return adm, key, ReasonConnLimit
	}
	return adm, key, ReasonNone
}

// serve hands an admitted connection, holding a slot for key, to its own
// goroutine.
func (s *Server) serve(c net.Conn, addr netip.AddrPort, key ratelimit.Key, adm Admission) {
	s.conns.track(c)
	s.wg.Add(1)
	go s.serveConn(c, addr, key, adm)
}

// refuse closes a connection refused at accept.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		// Reset rather than linger in TIME_WAIT: the peer is unwelcome.
		tc.SetLinger(0)
	}
	c.Close()
}

// remoteAddrPort returns c's peer address with IPv4-mapped addresses
// unmapped; the zero AddrPort when the listener gives none.
func remoteAddrPort(c net.Conn) netip.AddrPort {
	var ap netip.AddrPort
	switch ra := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap = ra.AddrPort()
	case nil:
	default:
		ap, _ = netip.ParseAddrPort(ra.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

var _ ResponseWriter = (*responseWriter)(nil)
