package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
)

// drainTimeout bounds how long a finished connection waits for the client's
// close_notify, so that unread client bytes do not turn our close into a
// reset that could destroy the response in flight.
const drainTimeout = time.Second

var (
	lineBufPool = sync.Pool{New: func() any { b := make([]byte, MaxRequestLine+2); return &b }}
	writerPool  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
	drainPool   = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}
)

var (
	errLineTooLong   = errors.New("request line too long")
	errHeaderWritten = errors.New("gemini: header already written")
	errNoBody        = errors.New("gemini: body not allowed for this status")
	errBadHeader     = errors.New("gemini: invalid status or meta")
)

func (s *Server) serveConn(c net.Conn, addr netip.AddrPort, key ratelimit.Key, adm Admission) {
	defer s.wg.Done()
	defer s.conns.release(key, c)
	// cc holds back what TLS writes until the connection next reads or
	// closes: the handshake flight and tickets, and a response's end with
	// its close_notify, each leave in one segment.
	cc := newCoalescingConn(c)
	defer cc.Close()

	start := s.now()
	tc := tls.Server(cc, s.tlsCfg)
	c.SetDeadline(start.Add(s.lim.HandshakeTimeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.stats.hsFailed.Add(1)
		s.log.Debug("handshake", clientAttr(s.cfg.Hasher, addr.Addr()), errAttr(err))
		return
	}
	s.stats.handshakes.Add(1)
	cs := tc.ConnectionState()
	if cs.DidResume {
		s.stats.resumed.Add(1)
	}

	bufp := lineBufPool.Get().(*[]byte)
	defer lineBufPool.Put(bufp)
	c.SetDeadline(s.now().Add(s.lim.RequestTimeout))
	line, rest, err := readRequestLine(tc, *bufp, s.lim.MaxRequestBytes)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			s.finish(cc, tc, start, StatusBadRequest, "request line too long", addr, &Request{RemoteAddr: addr}, ReasonBadRequest)
			return
		}
		// A client that never completes its line (no CRLF, slowloris, or
		// gone): nothing to answer.
		s.stats.timeouts.Add(1)
		return
	}
	s.conns.markBusy(c)
	c.SetDeadline(time.Time{})

	r := &Request{RemoteAddr: addr}
	if err := ParseRequest(line, r); err != nil {
		reason, msg := ReasonBadRequest, ""
		var ge *Error
		if errors.As(err, &ge) {
			reason, msg = ge.Reason, ge.Msg
		}
		s.finish(cc, tc, start, Status(reason), metaFor(reason, msg), addr, r, reason)
		return
	}
	r.SNI = normalizedSNI(cs.ServerName)
	if len(cs.PeerCertificates) > 0 {
		r.ClientCert = cs.PeerCertificates[0]
		r.ClientID = tofu.IdentityOf(r.ClientCert)
	}

	v := s.hostFor(r.SNI)
	// A TOFU claim gets its own deadline (see Layers.claim): a pin store
	// that cannot commit (a Raft cluster without a leader) must not hold
	// the request, its connection slot and a shutdown forever.
	r.decideTimeout = s.lim.DecideTimeout
	d := s.layers.Decide(s.ctx, v, r, adm)
	r.Route, r.host, r.layers = d.Route, v, s.layers
	if d.Err != nil {
		s.log.Error("tofu claim", "host", r.Host, "path", r.Path, clientAttr(s.cfg.Hasher, addr.Addr()), errAttr(d.Err))
	}
	if d.Reason != ReasonNone {
		meta := metaFor(d.Reason, d.Msg)
		if d.Reason == ReasonRateLimited {
			meta = strconv.Itoa(d.RetryAfter)
		}
		s.finish(cc, tc, start, Status(d.Reason), meta, addr, r, d.Reason)
		return
	}
	if r.Scheme == SchemeTitan {
		r.Body = io.LimitReader(io.MultiReader(bytes.NewReader(rest), &deadlineReader{c: tc, timeout: s.lim.RequestTimeout, now: s.now}), r.Titan.Size)
	}

	// A handler's writes go out as it makes them (a stream is never held
	// back); its last buffered bytes are held again below, to leave with
	// the close_notify.
	cc.setHold(false)
	w := newResponseWriter(tc, s.lim.WriteTimeout, s.now)
	defer w.release()
	herr := d.Route.Handler.ServeGemini(s.ctx, w, r)
	reason := ReasonNone
	if herr != nil {
		reason = ReasonInternal
		var ge *Error
		if errors.As(herr, &ge) {
			reason = ge.Reason
		}
		if !w.HeaderWritten() {
			if reason == ReasonInternal {
				s.log.Error("handler", "host", r.Host, "path", r.Path, clientAttr(s.cfg.Hasher, addr.Addr()), errAttr(herr))
			}
			msg := ""
			if ge != nil {
				msg = ge.Msg
			}
			w.WriteHeader(Status(reason), metaFor(reason, msg))
		} else {
			s.log.Warn("response cut short", "host", r.Host, "path", r.Path, clientAttr(s.cfg.Hasher, addr.Addr()), errAttr(herr))
		}
	}
	if !w.HeaderWritten() {
		// A handler that wrote nothing is a bug; the client still gets an answer.
		w.WriteHeader(StatusTemporaryFailure, "no response")
	}
	cc.setHold(true)
	w.flush()
	s.logRequest(addr, r, w.status, reason)
	s.stats.response(w.status, reason)
	s.close(cc, tc, len(rest) > 0 || r.Scheme == SchemeTitan)
	s.auditRequest(start, addr, r, w.status, reason, w.n)
}

// finish writes a header-only response and closes the connection.
func (s *Server) finish(c net.Conn, tc *tls.Conn, start time.Time, status int, meta string, addr netip.AddrPort, r *Request, reason Reason) {
	c.SetWriteDeadline(s.now().Add(s.lim.WriteTimeout))
	var b [MaxRequestLine + 8]byte
	n, _ := tc.Write(appendResponseHeader(b[:0], status, meta))
	s.stats.response(status, reason)
	s.logRequest(addr, r, status, reason)
	s.close(c, tc, true)
	s.auditRequest(start, addr, r, status, reason, int64(n))
}

// close sends close_notify and FIN. With drain it then reads what the
// client still sends, briefly, before the deferred Close releases the
// socket: closing a socket with unread bytes makes the kernel send a reset,
// which can destroy the response still in flight to the client. A well-behaved
// Gemini client sends nothing after its request line, so the successful path
// drains only when bytes followed the line (or a Titan body may be left);
// error answers always drain, since the client may still be sending.
func (s *Server) close(c net.Conn, tc *tls.Conn, drain bool) {
	tc.CloseWrite()
	if !drain {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(s.now().Add(drainTimeout))
	bp := drainPool.Get().(*[]byte)
	for i := 0; i < 16; i++ {
		if _, err := tc.Read(*bp); err != nil {
			break
		}
	}
	drainPool.Put(bp)
}

func (s *Server) logRequest(addr netip.AddrPort, r *Request, status int, reason Reason) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{clientAttr(s.cfg.Hasher, addr.Addr()), slog.Int("status", status), slog.String("reason", reason.String())}
	if r != nil && r.Scheme != 0 {
		attrs = append(attrs, slog.String("scheme", r.Scheme.String()), slog.String("host", r.Host), slog.String("path", r.Path))
		if r.ClientCert != nil {
			attrs = append(attrs, slog.String("cert", r.ClientID.CertFingerprint().String()))
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

func metaFor(r Reason, msg string) string {
	if msg != "" {
		return msg
	}
	return defaultMeta(r)
}

func normalizedSNI(sni string) string {
	if sni == "" {
		return ""
	}
	n, err := NormalizeHost(sni)
	if err != nil {
		// Keep a value that matches no host, so the request gets 53.
		return "invalid."
	}
	return n
}

// readRequestLine reads a request line terminated by CRLF into buf. It
// returns the line without CRLF and any bytes that followed it (the start
// of a Titan body). A line longer than max fails with errLineTooLong as
// soon as that is certain; a line without CRLF waits for the deadline.
func readRequestLine(r io.Reader, buf []byte, limit int) (line, rest []byte, err error) {
	n := 0
	for {
		m, rerr := r.Read(buf[n:])
		start := max(n-1, 0)
		n += m
		if i := bytes.Index(buf[start:n], []byte("\r\n")); i >= 0 {
			end := start + i
			if end > limit {
				return nil, nil, errLineTooLong
			}
			return buf[:end], buf[end+2 : n], nil
		}
		if n > limit+1 || (n == limit+1 && buf[limit] != '\r') || n == len(buf) {
			return nil, nil, errLineTooLong
		}
		if rerr != nil {
			return nil, nil, rerr
		}
	}
}

// deadlineReader renews the read deadline before every read, so a Titan
// upload may take long in total but may not stall.
type deadlineReader struct {
	c       *tls.Conn
	timeout time.Duration
	now     func() time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.c.SetReadDeadline(d.now().Add(d.timeout))
	return d.c.Read(p)
}

// responseWriter buffers a response and writes it with a deadline renewed
// on every flush to the connection.
type responseWriter struct {
	tc      *tls.Conn
	bw      *bufio.Writer
	timeout time.Duration
	now     func() time.Time
	status  int
	wrote   bool
	err     error
	n       int64 // bytes handed to the TLS connection
}

func newResponseWriter(tc *tls.Conn, timeout time.Duration, now func() time.Time) *responseWriter {
	w := &responseWriter{tc: tc, timeout: timeout, now: now}
	w.bw = writerPool.Get().(*bufio.Writer)
	w.bw.Reset(connWriter{w})
	return w
}

// connWriter is the bufio.Writer's sink: it renews the write deadline.
type connWriter struct{ w *responseWriter }

func (cw connWriter) Write(p []byte) (int, error) {
	cw.w.tc.SetWriteDeadline(cw.w.now().Add(cw.w.timeout))
	n, err := cw.w.tc.Write(p)
	cw.w.n += int64(n)
	return n, err
}

func (w *responseWriter) WriteHeader(status int, meta string) error {
	if w.wrote {
		return errHeaderWritten
	}
	if status < 10 || status > 69 || len(meta) > MaxMeta || checkMeta(meta) != nil {
		return errBadHeader
	}
	w.wrote, w.status = true, status
	// The header is formatted in the buffer's free space: no allocation.
	_, err := w.bw.Write(appendResponseHeader(w.bw.AvailableBuffer(), status, meta))
	return err
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote || w.status/10 != 2 {
		return 0, errNoBody
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.err = err
	return n, err
}

func (w *responseWriter) HeaderWritten() bool { return w.wrote }

// Flush sends what the writer holds to the client now. It implements
// Flusher.
func (w *responseWriter) Flush() error {
	w.flush()
	return w.err
}

func (w *responseWriter) flush() {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
}

func (w *responseWriter) release() {
	w.bw.Reset(nil)
	writerPool.Put(w.bw)
	w.bw = nil
}
