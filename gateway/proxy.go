package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// ProxyConfig configures an upstream proxy handler (NewProxy).
type ProxyConfig struct {
	// Upstream is "gemini://host[:port]" (TLS, port 1965 by default) or
	// "tcp://host:port" (plain TCP, for an upstream on a private network);
	// see ParseUpstreamURL.
	Upstream string
	// SNI is the host name presented upstream, as TLS server name and as
	// the host of the forwarded URL. Default: the upstream's host (no TLS
	// server name is sent for an IP literal).
	SNI string
	// StripPrefix, when not empty, is a canonical path prefix (see
	// ValidPrefix; a missing trailing "/" is added) removed from the request
	// path before forwarding: with "/app/", "/app/x" is forwarded as "/x"
	// and "/app" as "/". Paths outside it are forwarded unchanged. Absolute
	// redirects from the upstream get it back.
	StripPrefix string
	// ProxyProtocol sends a PROXY protocol v2 header first (tcp:// only);
	// see proxyproto.go for its TLVs.
	ProxyProtocol bool
	// ConnectTimeout bounds connect and handshake; ReadTimeout is the idle
	// timeout for the response header and each read or write after it.
	// Zero means DefaultConnectTimeout and DefaultReadTimeout.
	ConnectTimeout, ReadTimeout time.Duration
	// Pins holds the upstream certificate pins (required for gemini://):
	// the first certificate seen is pinned under PinKey{PinUpstream,
	// "sni:port"}, and a different one later is refused with 43.
	Pins tofu.Store
	// Now stamps new pins; nil means time.Now.
	Now func() time.Time
}

var _ Handler = (*proxy)(nil)

// proxy forwards requests to one upstream. See NewProxy.
type proxy struct {
	tls       bool
	addr      string   // dial address, host:port
	sni       string   // TLS server name; "" for none
	authority string   // host[:port] of the forwarded URL
	aliases   []string // lower-case "scheme://authority" spellings of the upstream, for redirects
	strip     string   // StripPrefix without its trailing slash; "" for none
	stripSegs int      // number of segments in strip
	pp        bool
	client    *Client
	dialer    net.Dialer
	connectTO time.Duration
	readTO    time.Duration
}

// upstreamSessionCacheSize bounds the TLS sessions a proxy keeps for its
// upstream; one upstream server needs few, but many concurrent requests
// each take one ticket.
const upstreamSessionCacheSize = 256

// NewProxy returns a handler forwarding allowed requests to cfg.Upstream.
//
// The forwarded request line is the request's URL with the host and port
// rewritten to the upstream's (or cfg.SNI), the canonical path (after
// StripPrefix) and the query, so that upstreams which check the URL host
// (molly-brown, …) answer instead of refusing with 53. A Titan request is
// forwarded as titan://…/path;size=N;mime=T[;token=X] followed by exactly
// N body bytes.
//
// Before anything is written to the client, failures become an *Error: a
// changed upstream certificate is ReasonUpstreamUntrusted; an unreachable
// upstream, a timeout or a malformed response header (anything
// ParseResponseHeader refuses, or a line not ended by CRLF) is
// ReasonUpstreamError; both map to 43. Once the upstream's header has been
// relayed, the body streams through a pooled buffer and an error only ends
// the response.
func NewProxy(cfg ProxyConfig) (Handler, error) {
	u, err := ParseUpstreamURL(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &proxy{
		tls:       u.Scheme == UpstreamGemini,
		addr:      u.Address(),
		connectTO: timeoutOr(cfg.ConnectTimeout, DefaultConnectTimeout),
		readTO:    timeoutOr(cfg.ReadTimeout, DefaultReadTimeout),
		pp:        cfg.ProxyProtocol,
	}
	if p.pp && p.tls {
		return nil, fmt.Errorf("proxy upstream %q: proxy_protocol needs a tcp:// upstream", cfg.Upstream)
	}
	if p.tls && cfg.Pins == nil {
		return nil, errors.New("proxy: a pin store is required for gemini:// upstreams")
	}
	host, port := u.Host, u.Port

	name := host
	if cfg.SNI != "" {
		if name, err = NormalizeHost(cfg.SNI); err != nil {
			return nil, fmt.Errorf("proxy sni %q: %w", cfg.SNI, err)
		}
	}
	if _, err := netip.ParseAddr(name); err != nil {
		p.sni = name
	}
	p.authority = string(appendHostPort(nil, name, port))
	p.aliases = []string{"gemini://" + p.authority}
	if port == DefaultGeminiPort {
		p.authority = string(appendHostPort(nil, name, 0))
		p.aliases = []string{"gemini://" + p.authority, "gemini://" + p.authority + ":" + strconv.Itoa(port)}
	}

	if cfg.StripPrefix != "" {
		sp := cfg.StripPrefix
		if !strings.HasSuffix(sp, "/") {
			sp += "/"
		}
		if err := ValidPrefix(sp); err != nil {
			return nil, fmt.Errorf("proxy strip_prefix: %w", err)
		}
		p.strip = strings.TrimSuffix(sp, "/")
		if p.strip != "" {
			p.stripSegs = strings.Count(p.strip, "/")
		}
	}
	// An upstream exchange is one request, bounded by the connect and read
	// timeouts: TCP keep-alive would only cost four setsockopts per
	// connection.
	p.dialer.KeepAlive = -1
	if p.tls {
		p.client = &Client{
			Dialer:         &p.dialer,
			ConnectTimeout: p.connectTO,
			ReadTimeout:    p.readTO,
			Pins:           cfg.Pins,
			Now:            cfg.Now,
			// Resume TLS sessions with the upstream: a resumed handshake
			// skips the certificate signature and key exchange on both sides.
			SessionCache:     tls.NewLRUClientSessionCache(upstreamSessionCacheSize),
			LearnKeyExchange: true,
		}
	}
	return p, nil
}

func (p *proxy) ServeGemini(ctx context.Context, w ResponseWriter, r *Request) error {
	line, err := p.requestLine(r)
	if err != nil {
		return err
	}
	var body *exactReader
	if r.Scheme == SchemeTitan && r.Titan.Size > 0 {
		if r.Body == nil {
			return &Error{Reason: ReasonBadRequest, Msg: "upload body missing"}
		}
		body = &exactReader{r: r.Body, n: r.Titan.Size}
	}
	resp, err := p.roundTrip(ctx, r, line, body)
	if err != nil {
		reportUpstreamConflict(r, err)
		return p.refusal(err, body)
	}
	meta := resp.Meta
	if resp.Status/10 == 3 {
		meta = p.rewriteRedirect(meta)
	}
	if err := w.WriteHeader(resp.Status, meta); err != nil {
		if resp.Body != nil {
			resp.Body.Close()
		}
		return err
	}
	if resp.Body == nil {
		return nil
	}
	defer resp.Body.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	// An upstream may stream (a slow page, a live feed): what it sent
	// reaches the client within streamFlushDelay, not when the buffer
	// fills or the upstream finishes.
	lw, stop := newLatencyWriter(w, streamFlushDelay)
	defer stop()
	if _, err := copyContext(ctx, lw, resp.Body, *buf); err != nil {
		return fmt.Errorf("proxy body: %w", err)
	}
	return nil
}

// roundTrip sends the request upstream and reads the response header.
func (p *proxy) roundTrip(ctx context.Context, r *Request, line string, body *exactReader) (*Response, error) {
	var rb io.Reader
	if body != nil {
		rb = body
	}
	if p.tls {
		return p.client.DoRaw(ctx, p.addr, p.sni, line, rb)
	}
	cctx, cancel := context.WithTimeout(ctx, p.connectTO)
	conn, err := p.dialer.DialContext(cctx, "tcp", p.addr)
	cancel()
	if err != nil {
		return nil, netError(ctx, "dial", err)
	}
	if p.pp {
		hdr, err := proxyHeader(r, conn.RemoteAddr())
		if err != nil {
			conn.Close()
			return nil, netError(ctx, "write proxy header", err)
		}
		// Held, the header leaves with the request line, under the
		// deadline exchange sets for its writes.
		conn = newCoalescingConn(conn)
		conn.Write(hdr)
	}
	return exchange(ctx, conn, line, rb, p.readTO)
}

// refusal maps a failed round trip to the *Error the client sees.
func (p *proxy) refusal(err error, body *exactReader) error {
	if body != nil && body.err != nil {
		// The client's upload failed, not the upstream.
		if e := (*Error)(nil); errors.As(body.err, &e) {
			return e
		}
		return &Error{Reason: ReasonBadRequest, Msg: "upload interrupted", Err: body.err}
	}
	switch {
	case errors.Is(err, ErrPinMismatch):
		return &Error{Reason: ReasonUpstreamUntrusted, Msg: "upstream certificate changed", Err: err}
	case errors.Is(err, ErrPinStore):
		return &Error{Reason: ReasonUnavailable, Msg: "upstream trust store unavailable", Err: err}
	case errors.Is(err, ErrBadHeader):
		return &Error{Reason: ReasonUpstreamError, Msg: "upstream sent a malformed response", Err: err}
	case errors.Is(err, ErrTimeout):
		return &Error{Reason: ReasonUpstreamError, Msg: "upstream timed out", Err: err}
	}
	return &Error{Reason: ReasonUpstreamError, Msg: "upstream unreachable", Err: err}
}

// requestLine builds the forwarded request line for r.
func (p *proxy) requestLine(r *Request) (string, error) {
	fwdPath := p.forwardPath(r.Path)
	b := make([]byte, 0, MaxRequestLine)
	if r.Scheme == SchemeTitan {
		b = append(b, "titan://"...)
	} else {
		b = append(b, "gemini://"...)
	}
	b = append(b, p.authority...)
	b = append(b, fwdPath...)
	if r.Scheme == SchemeTitan {
		mimeType := r.Titan.MIME
		if mimeType == "" {
			mimeType = DefaultTitanMIME // a Request built by hand; ParseTitanParams sets it
		}
		b = append(b, ";size="...)
		b = strconv.AppendInt(b, r.Titan.Size, 10)
		b = append(b, ";mime="...)
		b = appendParamEscaped(b, mimeType)
		if r.Titan.Token != "" {
			b = append(b, ";token="...)
			b = appendParamEscaped(b, r.Titan.Token)
		}
	}
	if r.RawQuery != "" {
		b = append(b, '?')
		b = append(b, r.RawQuery...)
	}
	if len(b) > MaxRequestLine {
		return "", &Error{Reason: ReasonBadRequest, Msg: "request too long for the upstream"}
	}
	return string(b), nil
}

// forwardPath removes the strip prefix from a canonical path. The prefix
// is matched as the route matched it (PrefixMatch, whole segments with
// folding), so as many segments are removed as the prefix has.
func (p *proxy) forwardPath(path string) string {
	if p.stripSegs == 0 || !PrefixMatch(p.strip+"/", path) {
		return path
	}
	rest := path
	for range p.stripSegs {
		i := strings.IndexByte(rest[1:], '/')
		if i < 0 {
			return "/"
		}
		rest = rest[i+1:]
	}
	return rest
}

// rewriteRedirect turns a redirect to the upstream's own URL space back into
// one in the client's: "gemini://upstream/x" and "/x" become
// StripPrefix+"/x". Anything else is returned unchanged.
func (p *proxy) rewriteRedirect(meta string) string {
	rest, ok := "", false
	for _, a := range p.aliases {
		if len(meta) >= len(a) && strings.EqualFold(meta[:len(a)], a) {
			r := meta[len(a):]
			if r == "" || r[0] == '/' || r[0] == '?' {
				rest, ok = r, true
				break
			}
		}
	}
	if !ok {
		if strings.HasPrefix(meta, "/") && !strings.HasPrefix(meta, "//") {
			rest, ok = meta, true
		}
	}
	if !ok {
		return meta
	}
	if rest == "" || rest[0] == '?' {
		rest = "/" + rest
	}
	if out := p.strip + rest; len(out) <= MaxMeta {
		return out
	}
	return meta
}

// appendParamEscaped appends s percent-encoded for a Titan parameter
// value: unreserved characters and "/" and "+" (as in MIME types) stay
// literal, everything else, ';' and '=' included, becomes %XX.
func appendParamEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == '+':
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

// exactReader yields exactly n bytes of r: an early EOF is
// io.ErrUnexpectedEOF. It records the first read error so that a failed
// upload is told apart from a failed upstream.
type exactReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	switch {
	case err == io.EOF && e.n > 0:
		err = io.ErrUnexpectedEOF
	case err == io.EOF:
		return n, io.EOF
	}
	if err != nil {
		e.err = err
	}
	return n, err
}
