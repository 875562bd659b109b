package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// DefaultGeminiPort is the port of a gemini:// URL that names none.
const DefaultGeminiPort = 1965

// Client defaults, used when the corresponding field is zero.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultReadTimeout    = 30 * time.Second
)

// ErrPinMismatch is matched (errors.Is) by the error a Client returns when a
// server presents a certificate other than the one pinned for its host and
// port. The error is a *PinMismatchError with both fingerprints.
var ErrPinMismatch = errors.New("server certificate does not match its pin")

// ErrTimeout is wrapped by the errors for a connect, handshake, read or
// write that ran past its deadline (Client.ConnectTimeout or the idle
// ReadTimeout). The underlying net error is wrapped too.
var ErrTimeout = errors.New("timeout")

// ErrPinStore is wrapped by the errors for a pin store that failed to look up
// or record a server pin (for example a Raft store without a leader). The
// server's certificate was neither trusted nor refused: try again later.
var ErrPinStore = errors.New("pin store failed")

// PinMismatchError is the error for a server certificate that does not
// match its pin. errors.Is(err, ErrPinMismatch) reports true for it.
type PinMismatchError struct {
	Key       tofu.PinKey   // the pinned host and port
	Pinned    tofu.Pin      // the pin in force
	Presented tofu.Identity // what the server presented
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("%v: %s: pinned %s, presented %s", ErrPinMismatch, e.Key.Scope,
		e.Pinned.Identity.CertFingerprint(), e.Presented.CertFingerprint())
}

// Is reports whether target is ErrPinMismatch.
func (e *PinMismatchError) Is(target error) bool { return target == ErrPinMismatch }

// Client is a Gemini client with trust on first use for server
// certificates. The zero Client is usable: it accepts any server
// certificate. A Client is safe for concurrent use; do not change its fields
// while requests are in flight.
type Client struct {
	// Dialer opens TCP connections; nil means a zero net.Dialer.
	Dialer *net.Dialer
	// ConnectTimeout bounds the TCP connect, the TLS handshake and the pin
	// check together (DefaultConnectTimeout when zero). ReadTimeout is an
	// idle timeout: the longest wait for the response header as a whole and
	// for each read or write after it (DefaultReadTimeout when zero), so a
	// large body that keeps flowing is never cut off.
	ConnectTimeout, ReadTimeout time.Duration
	// Certificate is the client certificate presented when the server asks
	// for one; nil presents none.
	Certificate *tls.Certificate
	// Pins holds the server pins, keyed PinKey{tofu.PinUpstream,
	// "host:port"}: the first certificate a host:port presents is pinned, and
	// a later different certificate (one with neither the same DER nor the
	// same public key) fails with ErrPinMismatch. A nil Pins accepts every
	// certificate without pinning (Response.PinOutcome is then zero):
	// connections are encrypted but not authenticated.
	Pins tofu.Store
	// Now stamps new pins; nil means time.Now.
	Now func() time.Time
	// SessionCache, when set, resumes TLS sessions with servers seen
	// before. The pin check still runs on a resumed connection, against
	// the certificate of the session's original, full handshake.
	SessionCache tls.ClientSessionCache
	// LearnKeyExchange makes the client remember, per address, a classical
	// key exchange (X25519, P-256, …) that a server chose over the
	// post-quantum hybrid offered by default, and offer only that group
	// to it afterwards: a server that cannot do the hybrid gains nothing
	// from the ML-KEM key share the client would generate every time
	// (about a tenth of a proxy's CPU). The group was chosen in a
	// handshake whose transcript the server signed and whose certificate
	// passed the pin check, so it cannot be forced by someone in between.
	// A failed handshake forgets it.
	LearnKeyExchange bool

	groups sync.Map // addr → tls.CurveID, with LearnKeyExchange
}

// Response is a Gemini response. Expired or not-yet-valid server
// certificates are accepted (TOFU clients identify servers by pin, not by
// validity dates); ServerCert.NotAfter tells the caller.
type Response struct {
	Status int    // 10..69
	Meta   string // MIME type for 2x, prompt, URL or error text otherwise
	// Body streams the document for 2x responses; nil otherwise. The
	// caller must close it; it ends when the server closes the connection.
	Body           io.ReadCloser
	ServerCert     *x509.Certificate // leaf certificate; nil on plain TCP
	ServerIdentity tofu.Identity     // fingerprints of ServerCert
	PinOutcome     tofu.Outcome      // FirstUse or Match; zero without Pins
}

// Do requests rawURL, a gemini:// URL. It connects to the URL's host and
// port (DefaultGeminiPort when absent), sending the host as TLS SNI unless
// it is an IP literal, and sends rawURL without its fragment as the request
// line. The returned error wraps ErrPinMismatch, ErrPinStore, ErrTimeout or
// ErrBadHeader as the case may be; ctx bounds the whole exchange, body
// included.
func (c *Client) Do(ctx context.Context, rawURL string) (*Response, error) {
	line, addr, sni, err := clientRequest(rawURL)
	if err != nil {
		return nil, err
	}
	return c.DoRaw(ctx, addr, sni, line, nil)
}

// clientRequest turns a gemini:// URL into a request line, a dial address
// and a server name.
func clientRequest(rawURL string) (line, addr, sni string, err error) {
	line, _, _ = strings.Cut(rawURL, "#")
	u, err := url.Parse(line)
	if err != nil {
		return "", "", "", fmt.Errorf("parse url: %w", err)
	}
	switch {
	case !strings.EqualFold(u.Scheme, "gemini"):
		return "", "", "", fmt.Errorf("parse url: scheme %q: want gemini", u.Scheme)
	case u.User != nil:
		return "", "", "", errors.New("parse url: userinfo not allowed")
	case u.Hostname() == "":
		return "", "", "", errors.New("parse url: no host")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = strconv.Itoa(DefaultGeminiPort)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		sni = strings.ToLower(host)
	}
	return line, net.JoinHostPort(host, port), sni, nil
}

// DoRaw sends requestLine (without CRLF, at most MaxRequestLine bytes),
// then body if not nil, to addr ("host:port") over TLS with server name sni
// ("" sends no SNI), and reads the response. The server certificate is
// checked against the pin for "sni:port", or for addr when sni is empty.
// Errors are as for Do.
func (c *Client) DoRaw(ctx context.Context, addr, sni, requestLine string, body io.Reader) (*Response, error) {
	if err := checkRequestLine(requestLine); err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if sni != "" {
		host = sni
	}
	key := tofu.PinKey{Kind: tofu.PinUpstream, Scope: net.JoinHostPort(strings.ToLower(host), port)}

	conn, v, err := c.connect(ctx, addr, sni, key)
	if err != nil {
		return nil, err
	}
	resp, err := exchange(ctx, conn, requestLine, body, timeoutOr(c.ReadTimeout, DefaultReadTimeout))
	if err != nil {
		return nil, err
	}
	resp.ServerCert, resp.ServerIdentity, resp.PinOutcome = v.cert, v.id, v.outcome
	return resp, nil
}

// checkRequestLine refuses a request line that is too long or would split.
func checkRequestLine(line string) error {
	if len(line) > MaxRequestLine {
		return fmt.Errorf("request line longer than %d bytes", MaxRequestLine)
	}
	if strings.ContainsAny(line, "\r\n") {
		return errors.New("request line contains CR or LF")
	}
	return nil
}

// serverCheck records what the pin check saw during one handshake.
type serverCheck struct {
	cert    *x509.Certificate
	id      tofu.Identity
	outcome tofu.Outcome
	err     error
}

// connect dials addr and completes a TLS handshake whose server
// certificate passes the pin check for key.
func (c *Client) connect(ctx context.Context, addr, sni string, key tofu.PinKey) (*tls.Conn, *serverCheck, error) {
	cctx, cancel := context.WithTimeout(ctx, timeoutOr(c.ConnectTimeout, DefaultConnectTimeout))
	defer cancel()
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	raw, err := d.DialContext(cctx, "tcp", addr)
	if err != nil {
		return nil, nil, netError(ctx, "dial", err)
	}
	v := &serverCheck{}
	cfg := c.tlsConfig(cctx, sni, key, v)
	if g, ok := c.groups.Load(addr); ok {
		cfg.CurvePreferences = []tls.CurveID{g.(tls.CurveID)}
	}
	// The client's Finished and the request line that follows it leave in
	// one segment: the coalescing conn holds them until the first read of
	// the response.
	conn := tls.Client(newCoalescingConn(raw), cfg)
	if err := conn.HandshakeContext(cctx); err != nil {
		raw.Close()
		c.groups.Delete(addr)
		if v.err != nil {
			return nil, nil, v.err
		}
		return nil, nil, netError(ctx, "handshake", err)
	}
	if c.LearnKeyExchange && cfg.CurvePreferences == nil {
		if g := conn.ConnectionState().CurveID; classicalGroup(g) {
			c.groups.Store(addr, g)
		}
	}
	return conn, v, nil
}

// classicalGroup reports whether g is a key exchange without a
// post-quantum component.
func classicalGroup(g tls.CurveID) bool {
	switch g {
	case tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521:
		return true
	}
	return false
}

// tlsConfig builds the configuration of one connection. The pin check runs
// in VerifyConnection, before the client certificate is sent, so a server
// that fails it never sees the client's certificate.
func (c *Client) tlsConfig(ctx context.Context, sni string, key tofu.PinKey, v *serverCheck) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         sni,
		InsecureSkipVerify: true, // TOFU: verified by VerifyConnection
		ClientSessionCache: c.SessionCache,
		VerifyConnection: func(cs tls.ConnectionState) error {
			v.err = c.verify(ctx, key, cs, v)
			return v.err
		},
	}
	if c.Certificate != nil {
		cert := c.Certificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	return cfg
}

func (c *Client) verify(ctx context.Context, key tofu.PinKey, cs tls.ConnectionState, v *serverCheck) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	v.cert = cs.PeerCertificates[0]
	v.id = tofu.IdentityOf(v.cert)
	if c.Pins == nil {
		return nil
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	out, pin, err := tofu.Check(ctx, c.Pins, key, v.id, now(), v.cert.NotAfter)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrPinStore, err)
	case out == tofu.Mismatch:
		return &PinMismatchError{Key: key, Pinned: pin, Presented: v.id}
	}
	v.outcome = out
	return nil
}

func timeoutOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// netError wraps err from op, marking timeouts with ErrTimeout and
// preferring ctx's error when ctx ended (the deadline trick in exchange
// makes a cancelled request look like a timeout otherwise).
func netError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	if IsTimeout(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// IsTimeout reports whether err is a deadline expiry: it wraps ErrTimeout,
// os.ErrDeadlineExceeded or context.DeadlineExceeded, or is a net.Error
// whose Timeout method reports true. It is the one rule the gateway's
// client and the load tool share to tell a timeout from other failures.
func IsTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange sends one request on conn and reads the response header. On
// success with a 2x status the connection stays open for Response.Body;
// otherwise conn is closed. ctx ending aborts any blocked read or write.
func exchange(ctx context.Context, conn net.Conn, line string, body io.Reader, idle time.Duration) (*Response, error) {
	ic := &idleConn{Conn: conn, idle: idle}
	stop := context.AfterFunc(ctx, ic.abort)
	fail := func(op string, err error) (*Response, error) {
		stop()
		conn.Close()
		return nil, netError(ctx, op, err)
	}

	buf := make([]byte, 0, len(line)+2)
	buf = append(append(buf, line...), '\r', '\n')
	if _, err := ic.Write(buf); err != nil {
		return fail("write request", err)
	}
	var writeErr error
	if body != nil {
		rerr, werr := copyBody(ic, body)
		if rerr != nil {
			return fail("read request body", rerr)
		}
		// An upstream may refuse an upload (59, 50, …) and close before
		// reading all of it: its answer is still worth reading.
		writeErr = werr
	}

	// The whole header must arrive within one idle period: a server that
	// trickles it byte by byte gets no more time than a silent one.
	ic.fixed = true
	ic.setDeadline(true, time.Now().Add(idle))
	br := bufio.NewReaderSize(ic, maxResponseHeader)
	status, meta, err := readResponseHeader(br)
	if err != nil && writeErr != nil {
		return fail("write request body", writeErr)
	}
	if err != nil {
		if errors.Is(err, ErrBadHeader) {
			stop()
			conn.Close()
			return nil, err
		}
		return fail("read header", err)
	}
	ic.fixed = false
	resp := &Response{Status: status, Meta: meta}
	if status/10 != 2 {
		stop()
		conn.Close()
		return resp, nil
	}
	resp.Body = &responseBody{ctx: ctx, r: br, conn: conn, stop: stop}
	return resp, nil
}

// copyBody copies a request body to the connection with a bounded buffer,
// telling a failure to read the body from a failure to send it.
func copyBody(dst io.Writer, src io.Reader) (readErr, writeErr error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if rerr == io.EOF {
			return nil, nil
		}
		if rerr != nil {
			return rerr, nil
		}
	}
}

// readResponseHeader reads one header line ended by CRLF, at most
// maxResponseHeader bytes, and parses it. A line that is too long, ends
// with a bare LF, or is cut short by EOF wraps ErrBadHeader.
func readResponseHeader(br *bufio.Reader) (int, string, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return 0, "", fmt.Errorf("%w: longer than %d bytes", ErrBadHeader, maxResponseHeader)
	case errors.Is(err, io.EOF):
		return 0, "", fmt.Errorf("%w: connection closed before CRLF", ErrBadHeader)
	case err != nil:
		return 0, "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, "", fmt.Errorf("%w: line not ended by CRLF", ErrBadHeader)
	}
	return ParseResponseHeader(line[:len(line)-2])
}

// idleConn sets a deadline before every read and write, so that idle is
// the longest wait for progress. While fixed is set, reads keep the
// deadline already in place. Once abort has run (ctx ended), deadlines stay
// in the past: a later read or write cannot push them out again.
type idleConn struct {
	net.Conn
	idle  time.Duration
	fixed bool

	mu      sync.Mutex
	aborted bool
}

func (c *idleConn) Read(p []byte) (int, error) {
	if !c.fixed {
		c.setDeadline(true, time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.setDeadline(false, time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

func (c *idleConn) setDeadline(read bool, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.aborted:
	case read:
		c.Conn.SetReadDeadline(t)
	default:
		c.Conn.SetWriteDeadline(t)
	}
}

// abort makes blocked and future reads and writes fail at once.
func (c *idleConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	c.Conn.SetDeadline(time.Unix(1, 0))
}

// responseBody streams a 2x body and closes the connection when closed.
type responseBody struct {
	ctx  context.Context
	r    *bufio.Reader
	conn net.Conn
	stop func() bool
	once sync.Once
	cerr error
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = netError(b.ctx, "read body", err)
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.once.Do(func() {
		b.stop()
		b.cerr = b.conn.Close()
	})
	return b.cerr
}
