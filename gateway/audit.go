package gateway

import (
	"net/netip"
	"time"
)

// Stage says where a connection's audit trail ends.
type Stage uint8

const (
	// StageAccept: refused at accept, before any TLS handshake.
	StageAccept Stage = iota + 1
	// StageRequest: a request line was read and answered.
	StageRequest
)

// String returns "accept" or "request".
func (s Stage) String() string {
	switch s {
	case StageAccept:
		return "accept"
	case StageRequest:
		return "request"
	}
	return "unknown"
}

// Outcome is what the audit trail learns of one connection: a refusal at
// accept, or a request and its answer. Connections that end without an
// answer (failed handshakes, clients that never complete their line) are
// counted in Stats, not audited.
type Outcome struct {
	Start    time.Time  // when the connection was accepted
	Addr     netip.Addr // the client; an AuditSink must not let it leave the node
	Stage    Stage
	Request  *Request // StageRequest: the request; its Scheme is 0 when the line did not parse
	Status   int      // the Gemini status sent; 0 at StageAccept
	Reason   Reason   // why the connection was refused or answered with an error; ReasonNone when served
	Bytes    int64    // bytes of response written (header and body, before TLS)
	Duration time.Duration
}

// AuditSink receives an Outcome for every audited connection. Audit is
// called on the accept loop and on connection goroutines: it must be safe
// for concurrent use, must not block, and must not keep o or anything it
// points to after it returns.
type AuditSink interface {
	Audit(o *Outcome)
}

// auditRefusal records a connection refused at accept.
func (s *Server) auditRefusal(addr netip.Addr, reason Reason, now time.Time) {
	if s.cfg.Audit == nil {
		return
	}
	o := Outcome{Start: now, Addr: addr, Stage: StageAccept, Reason: reason}
	s.cfg.Audit.Audit(&o)
}

// auditRequest records an answered request.
func (s *Server) auditRequest(start time.Time, addr netip.AddrPort, r *Request, status int, reason Reason, n int64) {
	if s.cfg.Audit == nil {
		return
	}
	o := Outcome{
		Start: start, Addr: addr.Addr(), Stage: StageRequest, Request: r,
		Status: status, Reason: reason, Bytes: n, Duration: s.now().Sub(start),
	}
	s.cfg.Audit.Audit(&o)
}
