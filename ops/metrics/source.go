package metrics

import "time"

// Sources are where the exporter reads what it exports, at each scrape.
// A nil function leaves its metrics out (a node without an audit file has
// no audit file metrics). The functions must be safe for concurrent use
// and quick: they run while Prometheus waits.
type Sources struct {
	// Info names the node in chimalli_node_info.
	Info Info
	// Gateway returns the gateway's counters.
	Gateway func() Gateway
	// Raft returns this node's Raft health; it also decides readiness.
	Raft func() Raft
	// ActiveBans returns how many bans this node enforces now.
	ActiveBans func() int
	// AuditPublisher returns the counters of the audit records' way to NATS.
	AuditPublisher func() AuditPublisher
	// AuditLog returns the counters of the audit file (audit.file).
	AuditLog func() AuditLog
	// ConflictPublisher and StatePublisher return the counters of the
	// trust-conflict and state-event publishers.
	ConflictPublisher func() Publisher
	StatePublisher    func() Publisher
}

// Info identifies the node.
type Info struct {
	NodeID  string
	Version string
}

// Gateway is a snapshot of the gateway's counters since it started.
type Gateway struct {
	Accepted          uint64 // TCP connections accepted
	Handshakes        uint64 // TLS handshakes completed
	Resumed           uint64 // of which resumed a session
	HandshakeFailures uint64 // TLS handshakes failed or timed out
	RequestTimeouts   uint64 // connections closed waiting for a request line
	// RefusedAtAccept counts connections closed before any handshake, by
	// reason (access_denied, banned, rate_limited_hard, conn_limit).
	RefusedAtAccept map[string]uint64
	// Requests counts answered requests by decision: "allowed" when a
	// handler served it, else the reason it was refused or failed.
	Requests map[string]uint64
	// Responses counts answered requests by Gemini status.
	Responses       map[int]uint64
	OpenConnections int // held now
}

// The decisions that are rate limiting: a soft limit answers 44, a hard
// one closes the connection at accept.
const (
	DecisionRateLimited     = "rate_limited"
	DecisionRateLimitedHard = "rate_limited_hard"
)

// Raft states as Raft names them.
const (
	StateLeader    = "leader"
	StateFollower  = "follower"
	StateCandidate = "candidate"
	StateShutdown  = "shutdown"
)

// raftStates are every value of Raft.State, for chimalli_raft_state.
var raftStates = []string{StateLeader, StateFollower, StateCandidate, StateShutdown}

// Raft is this node's view of the Raft cluster.
type Raft struct {
	State  string // StateLeader, StateFollower, StateCandidate or StateShutdown
	Term   uint64
	Leader string // the leader's id; empty when none is known
	// LastContact is how long ago this follower last heard from its
	// leader: 0 on the leader, negative when it never has.
	LastContact time.Duration
	// HeartbeatTimeout is Raft's (cluster.heartbeat_timeout, or the
	// shorter one of a node alone): it bounds LastContact in Ready.
	HeartbeatTimeout time.Duration
	CommitIndex      uint64 // the last entry this node knows to be committed
	// AppliedIndex is the last committed entry handed to the state
	// machine, Raft's own no-op and barrier entries included.
	AppliedIndex uint64
	LastIndex    uint64 // the last entry in this node's log
	Failed       string // why the state machine stopped; empty while it runs
}

// AuditPublisher counts what became of the audit records on their way to
// NATS (events.AuditPublisherStats).
type AuditPublisher struct {
	Published     uint64 // acknowledged by JetStream
	Spooled       uint64 // written to the spool while JetStream could not take them
	PublishErrors uint64 // publishes that failed or timed out (their records were spooled)
	Dropped       uint64 // lost: the buffer was full
	SpoolDropped  uint64 // lost: the spool was full
	SpoolErrors   uint64 // lost: a spool write failed
	Invalid       uint64 // refused as invalid
	SpoolBytes    int64  // bytes the spool holds now
}

// AuditLog counts what became of the records given to the audit file.
type AuditLog struct {
	Written     uint64 // lines written
	Dropped     uint64 // lost: the buffer was full
	WriteErrors uint64 // lost: a write failed
	Invalid     uint64 // refused as invalid
}

// Publisher counts what a NATS publisher of the node did.
type Publisher struct {
	Published uint64 // acknowledged by the stream
	Errors    uint64 // publishes that failed
	Dropped   uint64 // messages given up without sending them
}
