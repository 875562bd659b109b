package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/chimalli/chimalli/gateway"
)

// ErrorKind classifies a failed request.
type ErrorKind uint8

// Error kinds, in report order. A deadline hit in any phase is KindTimeout.
const (
	KindDial        ErrorKind = iota // TCP connect failed
	KindTLS                          // TLS handshake failed
	KindWrite                        // writing the request failed
	KindReadHeader                   // connection ended or failed before a complete header line
	KindBadHeader                    // header line refused by gateway.ParseResponseHeader, not ended by CRLF, or longer than 1029 bytes
	KindTimeout                      // the per-request timeout expired
	KindReadBody                     // reading the body failed before a clean EOF
	KindCertChanged                  // the server certificate differs from the first one seen
	numKinds
)

var kindNames = [numKinds]string{
	KindDial:        "dial",
	KindTLS:         "tls",
	KindWrite:       "write",
	KindReadHeader:  "read_header",
	KindBadHeader:   "bad_header",
	KindTimeout:     "timeout",
	KindReadBody:    "read_body",
	KindCertChanged: "cert_changed",
}

// String returns the snake_case name used in reports.
func (k ErrorKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// maxHeader is the longest valid header line: two digits, a space,
// gateway.MaxMeta bytes of meta, CR LF.
const maxHeader = 2 + 1 + gateway.MaxMeta + 2

// bufSize is each worker's read buffer.
const bufSize = 32 << 10

// outcome is what one request produced.
type outcome struct {
	status    int // 10..69 when ok
	ok        bool
	kind      ErrorKind // when !ok
	aborted   bool      // the run was cancelled: count nothing
	bytes     int64     // header + body bytes received
	handshake time.Duration
	hsDone    bool // handshake completed: handshake is valid
	resumed   bool
	end       time.Time
}

// aLongTimeAgo is a deadline in the past, to abort blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn holds what a worker reuses from one request to the next.
type conn struct {
	dialer net.Dialer
	buf    []byte
	now    func() time.Time
}

func newConn(now func() time.Time, allowRemote bool) *conn {
	c := &conn{buf: make([]byte, bufSize), now: now}
	if !allowRemote {
		c.dialer.Control = loopbackOnly
	}
	return c
}

// do performs one Gemini request to t, failing it once timeout has passed
// since start. ctx cancellation aborts it.
func (c *conn) do(ctx context.Context, t *target, start time.Time, timeout time.Duration) (o outcome) {
	deadline := start.Add(timeout)
	c.dialer.Deadline = deadline
	raw, err := c.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return c.fail(ctx, o, KindDial, err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo) })
	defer stop()
	if err := raw.SetDeadline(deadline); err != nil {
		return c.fail(ctx, o, KindDial, err)
	}

	hsStart := c.now()
	tlsConn := tls.Client(raw, t.tls)
	if err := tlsConn.Handshake(); err != nil {
		return c.fail(ctx, o, KindTLS, err)
	}
	o.handshake = c.now().Sub(hsStart)
	o.hsDone = true
	st := tlsConn.ConnectionState()
	o.resumed = st.DidResume
	if len(st.PeerCertificates) > 0 {
		if !t.sameCert(sha256.Sum256(st.PeerCertificates[0].Raw)) {
			return c.fail(ctx, o, KindCertChanged, nil)
		}
	}

	if _, err := tlsConn.Write(t.request); err != nil {
		return c.fail(ctx, o, KindWrite, err)
	}

	// Header: read until a LF within the first maxHeader bytes.
	n := 0
	lf := -1
	for lf < 0 {
		if n >= maxHeader {
			return c.fail(ctx, o, KindBadHeader, nil)
		}
		m, err := tlsConn.Read(c.buf[n:])
		if m > 0 {
			o.bytes += int64(m)
			lo := n
			n += m
			if i := bytes.IndexByte(c.buf[lo:min(n, maxHeader)], '\n'); i >= 0 {
				lf = lo + i
				break
			}
		}
		if err != nil {
			return c.fail(ctx, o, KindReadHeader, err)
		}
	}
	if lf == 0 || c.buf[lf-1] != '\r' {
		return c.fail(ctx, o, KindBadHeader, nil)
	}
	status, _, err := gateway.ParseResponseHeader(c.buf[:lf-1])
	if err != nil {
		return c.fail(ctx, o, KindBadHeader, nil)
	}

	// Body: to EOF.
	for {
		m, err := tlsConn.Read(c.buf)
		o.bytes += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.fail(ctx, o, KindReadBody, err)
		}
	}
	o.ok = true
	o.status = status
	o.end = c.now()
	return o
}

// sameCert records sum as t's certificate fingerprint if it is the first
// one seen, and reports whether sum equals the recorded one.
func (t *target) sameCert(sum [32]byte) bool {
	first := t.fp.Load()
	if first == nil {
		p := new([32]byte)
		*p = sum
		if t.fp.CompareAndSwap(nil, p) {
			return true
		}
		first = t.fp.Load()
	}
	return *first == sum
}

// fail finishes o as a failure of kind, or as a timeout when err is a
// deadline, or as aborted when ctx is done.
func (c *conn) fail(ctx context.Context, o outcome, kind ErrorKind, err error) outcome {
	o.end = c.now()
	if ctx.Err() != nil {
		o.aborted = true
		return o
	}
	if err != nil && gateway.IsTimeout(err) {
		kind = KindTimeout
	}
	o.kind = kind
	return o
}
