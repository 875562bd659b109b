package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The protocols spoken on the cluster port, told apart by TLS ALPN (as
// Vault does) so that one mutual-TLS port carries both and a connection
// states what it is for before any byte of it is read.
const (
	ProtoRaft    = "chimalli-raft/1"    // hashicorp/raft's network transport
	ProtoForward = "chimalli-forward/1" // commands forwarded to the leader
)

// muxHandshakeTimeout bounds a peer's TLS handshake on the cluster port.
const muxHandshakeTimeout = 5 * time.Second

// ErrMuxClosed is returned by a protocol listener's Accept once the mux is
// closed.
var ErrMuxClosed = errors.New("cluster mux closed")

// Mux accepts mutual-TLS connections on one TCP listener and hands each,
// once its handshake is done, to the listener of the protocol its ALPN
// names. A connection that fails the handshake (no certificate from the
// cluster authority, a client certificate that is not a node's, no or
// an unknown protocol) is closed and logged.
type Mux struct {
	ln     net.Listener
	tlsCfg *tls.Config
	log    *slog.Logger
	protos map[string]*protoListener
	ctx    context.Context // ends with Close: accepts and handshakes in progress give up
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
}

// NewMux returns a mux over ln for the given protocols. serverTLS must
// require and verify client certificates; its NextProtos are replaced by
// protos.
func NewMux(ln net.Listener, serverTLS *tls.Config, log *slog.Logger, protos ...string) (*Mux, error) {
	if serverTLS == nil || serverTLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("cluster mux: the TLS configuration must require and verify client certificates")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := serverTLS.Clone()
	cfg.NextProtos = slices.Clone(protos)
	m := &Mux{ln: ln, tlsCfg: cfg, log: log, protos: map[string]*protoListener{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, p := range protos {
		m.protos[p] = &protoListener{mux: m, conns: make(chan net.Conn)}
	}
	return m, nil
}

// Listener returns the listener of proto, one of NewMux's protocols.
func (m *Mux) Listener(proto string) net.Listener { return m.protos[proto] }

// Addr returns the TCP address the mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Serve accepts connections until Close. It starts a goroutine.
func (m *Mux) Serve() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.ctx.Done():
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				m.log.Error("cluster port: accept", "err", err)
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.handshake(c)
			}()
		}
	}()
}

func (m *Mux) handshake(c net.Conn) {
	tc := tls.Server(c, m.tlsCfg)
	ctx, cancel := context.WithTimeout(m.ctx, muxHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if m.ctx.Err() != nil { // closing: not the peer's fault
			c.Close()
			return
		}
		m.log.Warn("cluster port: handshake refused", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	pl, ok := m.protos[tc.ConnectionState().NegotiatedProtocol]
	if !ok {
		m.log.Warn("cluster port: no protocol", "remote", c.RemoteAddr().String())
		tc.Close()
		return
	}
	select {
	case pl.conns <- tc:
	case <-m.ctx.Done():
		tc.Close()
	}
}

// Close stops accepting, closes the TCP listener and ends the handshakes
// in progress (a peer that vanished mid-handshake would otherwise hold
// Close for muxHandshakeTimeout); connections already handed over belong
// to their protocol.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		m.cancel()
		err = m.ln.Close()
	})
	m.wg.Wait()
	return err
}

// protoListener is the net.Listener of one protocol of a Mux.
type protoListener struct {
	mux   *Mux
	conns chan net.Conn
}

func (l *protoListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.mux.ctx.Done():
		return nil, ErrMuxClosed
	}
}

// Close does nothing: the mux owns the TCP listener.
func (l *protoListener) Close() error { return nil }

func (l *protoListener) Addr() net.Addr { return l.mux.Addr() }

// dialer dials a peer's cluster port with mutual TLS for one protocol.
type dialer struct {
	tlsCfg *tls.Config
	wrap   func(net.Conn) net.Conn // tests: fault injection on the TCP connection; nil: none
}

func newDialer(clientTLS *tls.Config, proto string, wrap func(net.Conn) net.Conn) dialer {
	cfg := clientTLS.Clone()
	cfg.NextProtos = []string{proto}
	return dialer{tlsCfg: cfg, wrap: wrap}
}

func (d dialer) dial(ctx context.Context, addr string) (*tls.Conn, error) {
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d.wrap != nil {
		raw = d.wrap(raw)
	}
	cfg := d.tlsCfg
	if cfg.ServerName == "" {
		// The peer's certificate is checked against the name or address
		// dialled, as tls.Dial would.
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != d.tlsCfg.NextProtos[0] {
		tc.Close()
		return nil, fmt.Errorf("dial %s: peer speaks %q, want %q", addr, got, d.tlsCfg.NextProtos[0])
	}
	return tc, nil
}

// wrappedListener applies a test's fault injection to accepted connections.
type wrappedListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// streamLayer is the raft.StreamLayer over a Mux: raft's connections are
// mutual-TLS connections with ALPN ProtoRaft. It keeps every connection it
// dialled or accepted, so that cut can end them all at once when the node
// closes (see Node.Close).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	d         dialer

	ctx    context.Context // ends with cut: dials in progress give up, later ones fail
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, advertise net.Addr, d dialer) *streamLayer {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamLayer{Listener: ln, advertise: advertise, d: d, ctx: ctx, cancel: cancel, conns: map[*trackedConn]struct{}{}}
}

func (s *streamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c), nil
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	c, err := s.d.dial(ctx, string(address))
	if err != nil {
		return nil, err
	}
	tc := s.track(c)
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("dial %s: %w", address, net.ErrClosed)
	}
	return tc, nil
}

// track registers c; after cut, it is closed at once (its user sees it
// fail on first use).
func (s *streamLayer) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	cut := s.ctx.Err() != nil // cut cancels before it takes the lock: it sees tc or tc sees it
	if !cut {
		s.conns[tc] = struct{}{}
	}
	s.mu.Unlock()
	if cut {
		tc.cut()
	}
	return tc
}

// cut ends every raft connection of this node, dialled or accepted, and
// every dial in progress, and fails later dials: an RPC blocked on a peer
// that vanished without closing its end (a killed container, a blackholed
// host) returns at once instead of after the transport's timeout. Raft
// sees its connections fail, as when a peer goes away.
func (s *streamLayer) cut() {
	s.cancel()
	s.mu.Lock()
	conns := s.conns
	s.conns = map[*trackedConn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.cut()
	}
}

// trackedConn is a raft connection of a streamLayer.
type trackedConn struct {
	net.Conn
	s *streamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// cut closes the TCP connection under the TLS one: it neither waits for a
// read or write in progress nor writes a close_notify a dead peer would
// never read (tls.Conn.Close can block on both). Raft's own Close of the
// connection then only releases it.
func (c *trackedConn) cut() {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.Conn.Close()
}
