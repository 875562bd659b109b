package gateway

import "sync/atomic"

type counters struct {
	accepted   atomic.Uint64
	handshakes atomic.Uint64 // completed
	resumed    atomic.Uint64 // completed by resuming a session
	hsFailed   atomic.Uint64
	timeouts   atomic.Uint64 // request line not received in time
	refused    [reasonCount]atomic.Uint64
	answered   [reasonCount]atomic.Uint64 // requests answered, by decision
	statuses   [70]atomic.Uint64
}

// response counts one answered request: its Gemini status and the reason
// (the decision) behind it.
func (c *counters) response(status int, reason Reason) {
	c.statuses[status].Add(1)
	c.answered[reason].Add(1)
}

// Stats is a snapshot of a Server's counters since it started. Metrics
// exporters read it; tests use it to observe what happened at accept.
type Stats struct {
	Accepted        uint64            // TCP connections accepted
	Handshakes      uint64            // TLS handshakes completed
	Resumed         uint64            // of which resumed a TLS session
	HandshakeFailed uint64            // TLS handshakes failed or timed out
	RequestTimeouts uint64            // connections closed waiting for a request line
	RefusedAtAccept map[string]uint64 // by reason, closed before any handshake
	Requests        map[string]uint64 // answered requests by reason ("allowed" when served)
	Responses       map[int]uint64    // by Gemini status
	OpenConnections int               // held now
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Accepted:        s.stats.accepted.Load(),
		Handshakes:      s.stats.handshakes.Load(),
		Resumed:         s.stats.resumed.Load(),
		HandshakeFailed: s.stats.hsFailed.Load(),
		RequestTimeouts: s.stats.timeouts.Load(),
		RefusedAtAccept: map[string]uint64{},
		Requests:        map[string]uint64{},
		Responses:       map[int]uint64{},
		OpenConnections: s.conns.count(),
	}
	for r := range s.stats.refused {
		if n := s.stats.refused[r].Load(); n > 0 {
			st.RefusedAtAccept[Reason(r).String()] = n
		}
	}
	for r := range s.stats.answered {
		if n := s.stats.answered[r].Load(); n > 0 {
			st.Requests[Reason(r).String()] = n
		}
	}
	for code := range s.stats.statuses {
		if n := s.stats.statuses[code].Load(); n > 0 {
			st.Responses[code] = n
		}
	}
	return st
}
