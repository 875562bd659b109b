package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace starts every metric name of the node.
const Namespace = "chimalli"

// NewRegistry returns a registry of its own (not Prometheus's global
// one) holding the Go runtime and process collectors and the node's
// metrics, read from src at each scrape.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src),
	)
	return reg
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
}

// collector exports Sources as constant metrics built at scrape time.
type collector struct {
	src Sources

	info *prometheus.Desc

	accepted, refused, open              *prometheus.Desc
	handshakes, resumed, hsFailures      *prometheus.Desc
	requestTimeouts, requests, responses *prometheus.Desc
	rateLimited                          *prometheus.Desc

	bans *prometheus.Desc

	raftState, raftTerm, raftCommit, raftApplied, raftLast *prometheus.Desc
	raftLeader, raftContact, ready                         *prometheus.Desc

	published, publishErrors, publishDropped *prometheus.Desc
	auditDropped, auditSpooled, spoolBytes   *prometheus.Desc
	auditWritten                             *prometheus.Desc
}

func newCollector(src Sources) *collector {
	return &collector{
		src:  src,
		info: desc("node_info", "The node: its id and version. Always 1.", "node_id", "version"),

		accepted:        desc("connections_accepted_total", "TCP connections accepted on the Gemini listener."),
		refused:         desc("connections_refused_total", "Connections closed at accept, before any TLS handshake, by reason.", "reason"),
		open:            desc("connections_open", "Client connections held now."),
		handshakes:      desc("tls_handshakes_total", "TLS handshakes completed, resumed ones included."),
		resumed:         desc("tls_handshakes_resumed_total", "TLS handshakes completed by resuming a session."),
		hsFailures:      desc("tls_handshake_failures_total", "TLS handshakes that failed or timed out."),
		requestTimeouts: desc("request_timeouts_total", "Connections closed because no request line arrived in time."),
		requests:        desc("requests_total", "Requests answered, by decision: allowed when a handler served them, else the reason they were refused or failed.", "decision"),
		responses:       desc("responses_total", "Requests answered, by Gemini status.", "status"),
		rateLimited:     desc("rate_limited_total", "Rate limit refusals: soft (answered 44) and hard (closed at accept).", "limit"),

		bans: desc("bans_active", "Bans this node enforces now."),

		raftState:   desc("raft_state", "This node's Raft state: 1 for the current one, 0 for the others.", "state"),
		raftTerm:    desc("raft_term", "This node's current Raft term."),
		raftCommit:  desc("raft_commit_index", "The last Raft log index this node knows to be committed."),
		raftApplied: desc("raft_applied_index", "The last committed Raft log index handed to the state machine."),
		raftLast:    desc("raft_last_index", "The last index in this node's Raft log."),
		raftLeader:  desc("raft_leader_known", "1 when this node knows a leader, else 0."),
		raftContact: desc("raft_last_contact_seconds", "Seconds since this node last heard from the leader (0 on the leader); absent while it never has."),
		ready:       desc("ready", "1 when the node is ready (the rule /readyz answers with), else 0."),

		published:      desc("nats_published_total", "Messages NATS JetStream acknowledged, by publisher.", "publisher"),
		publishErrors:  desc("nats_publish_errors_total", "Publishes to NATS that failed, by publisher.", "publisher"),
		publishDropped: desc("nats_publish_dropped_total", "Messages given up without publishing them, by publisher.", "publisher"),
		auditDropped:   desc("audit_records_dropped_total", "Audit records lost, by sink (nats, file) and cause.", "sink", "cause"),
		auditSpooled:   desc("audit_records_spooled_total", "Audit records written to the spool while NATS could not take them."),
		spoolBytes:     desc("audit_spool_bytes", "Bytes the audit spool holds now."),
		auditWritten:   desc("audit_file_records_written_total", "Audit records written to audit.file."),
	}
}

// Describe sends every descriptor the collector may use.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.accepted, c.refused, c.open, c.handshakes, c.resumed, c.hsFailures,
		c.requestTimeouts, c.requests, c.responses, c.rateLimited, c.bans,
		c.raftState, c.raftTerm, c.raftCommit, c.raftApplied, c.raftLast, c.raftLeader, c.raftContact, c.ready,
		c.published, c.publishErrors, c.publishDropped, c.auditDropped, c.auditSpooled, c.spoolBytes, c.auditWritten,
	} {
		ch <- d
	}
}

// Collect reads the sources and sends their metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.info, 1, c.src.Info.NodeID, c.src.Info.Version)

	if c.src.Gateway != nil {
		g := c.src.Gateway()
		counter(c.accepted, g.Accepted)
		gauge(c.open, float64(g.OpenConnections))
		counter(c.handshakes, g.Handshakes)
		counter(c.resumed, g.Resumed)
		counter(c.hsFailures, g.HandshakeFailures)
		counter(c.requestTimeouts, g.RequestTimeouts)
		for reason, n := range g.RefusedAtAccept {
			counter(c.refused, n, reason)
		}
		for decision, n := range g.Requests {
			counter(c.requests, n, decision)
		}
		for status, n := range g.Responses {
			counter(c.responses, n, strconv.Itoa(status))
		}
		counter(c.rateLimited, g.Requests[DecisionRateLimited], "soft")
		counter(c.rateLimited, g.RefusedAtAccept[DecisionRateLimitedHard], "hard")
	}
	if c.src.ActiveBans != nil {
		gauge(c.bans, float64(c.src.ActiveBans()))
	}
	if c.src.Raft != nil {
		c.collectRaft(c.src.Raft(), gauge)
	}
	if c.src.AuditPublisher != nil {
		a := c.src.AuditPublisher()
		counter(c.published, a.Published, "audit")
		counter(c.publishErrors, a.PublishErrors, "audit")
		counter(c.auditSpooled, a.Spooled)
		gauge(c.spoolBytes, float64(a.SpoolBytes))
		counter(c.auditDropped, a.Dropped, "nats", "buffer_full")
		counter(c.auditDropped, a.SpoolDropped, "nats", "spool_full")
		counter(c.auditDropped, a.SpoolErrors, "nats", "spool_error")
		counter(c.auditDropped, a.Invalid, "nats", "invalid")
	}
	if c.src.AuditLog != nil {
		l := c.src.AuditLog()
		counter(c.auditWritten, l.Written)
		counter(c.auditDropped, l.Dropped, "file", "buffer_full")
		counter(c.auditDropped, l.WriteErrors, "file", "write_error")
		counter(c.auditDropped, l.Invalid, "file", "invalid")
	}
	for _, p := range []struct {
		name string
		get  func() Publisher
	}{{"conflict", c.src.ConflictPublisher}, {"state", c.src.StatePublisher}} {
		if p.get == nil {
			continue
		}
		s := p.get()
		counter(c.published, s.Published, p.name)
		counter(c.publishErrors, s.Errors, p.name)
		counter(c.publishDropped, s.Dropped, p.name)
	}
}

func (c *collector) collectRaft(r Raft, gauge func(*prometheus.Desc, float64, ...string)) {
	for _, s := range raftStates {
		gauge(c.raftState, boolValue(r.State == s), s)
	}
	gauge(c.raftTerm, float64(r.Term))
	gauge(c.raftCommit, float64(r.CommitIndex))
	gauge(c.raftApplied, float64(r.AppliedIndex))
	gauge(c.raftLast, float64(r.LastIndex))
	gauge(c.raftLeader, boolValue(r.Leader != ""))
	if r.LastContact >= 0 {
		gauge(c.raftContact, r.LastContact.Seconds())
	}
	gauge(c.ready, boolValue(Ready(r) == nil))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
