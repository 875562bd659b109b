package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// Peer is a voting member of the cluster: its node id and the address of
// its cluster port.
type Peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// Config configures a node of the cluster.
type Config struct {
	// ID is this node's id, the name in its certificate.
	ID string
	// Name is the cluster's name, written in the header of a backup
	// (Node.Backup); it may be empty.
	Name string
	// Dir holds the Raft log (raft.db) and snapshots; created 0700.
	Dir string
	// Listen is the cluster port (Raft and forwarding, mutual TLS), e.g.
	// "127.0.0.1:7001". Empty: a single node with no cluster port at all
	// (Raft runs over an in-memory transport; nothing listens).
	Listen string
	// Bind binds Listen; nil means net.Listen("tcp", addr). cmd/node
	// passes the Gemini listener's rule (gateway.Listen: 0.0.0.0 is IPv4
	// only, :: IPv6 only) so that every port of a node reads one way.
	Bind func(ctx context.Context, addr string) (net.Listener, error)
	// Advertise is the address other nodes reach this one at; Listen's
	// address when empty.
	Advertise string
	// Peers is the static list of voters the cluster starts with, this
	// node included. A node with no Raft state bootstraps with exactly this
	// list when it holds BootstrapExpect peers; every node of a new cluster
	// gets the same list, so they all bootstrap the same configuration.
	Peers []Peer
	// BootstrapExpect is how many voters a new cluster starts with: 1 for
	// a single node; len(Peers) for a static cluster; 0 for a node that
	// joins an existing cluster through Join.
	BootstrapExpect int
	// Join lists cluster ports of existing members to ask for admission
	// when this node has no Raft state and does not bootstrap.
	Join []string

	// ServerTLS and ClientTLS are the mutual-TLS configurations of the
	// cluster port (from the cluster authority). Required with Listen.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// PeerName returns the verified node id of a peer's connection.
	// Required with Listen.
	PeerName func(tls.ConnectionState) (string, error)

	Timing Timing
	// AutoBan sets the length of the auto-bans this node commits as leader.
	AutoBan raftstore.AutoBanPolicy
	// Hasher names clients in logs by a keyed hash; nil leaves them out.
	Hasher raftstore.AddrHasher
	// Logger receives the node's logs (Raft's included); nil discards.
	Logger *slog.Logger
	// Now stamps events on the leader; time.Now when nil.
	Now func() time.Time
	// OnLift is called on every node when a ban is lifted, before the new
	// ban view is published (so the node's rate limiter can start the
	// clients inside it afresh before they are admitted again). It runs on
	// the FSM's goroutine: it must be quick and must not call the node.
	OnLift func(netip.Prefix)
	// OnRules is called with the new view whenever the replicated access
	// rules change (and once at start). Same constraints as OnLift.
	OnRules func(*RuleSet)
	// TicketRotation is how often the leader adds a TLS session-ticket key
	// (tls.ticket_key_added). Zero: never (the node shares no ticket keys).
	TicketRotation time.Duration
	// AuditKeyRotation is how often the leader adds a key that hashes
	// client addresses (audit.key_rotated), so every node hashes a client
	// alike. Zero: never (the node's hasher keeps its own key).
	AuditKeyRotation time.Duration
	// AuditKeyRetention is how long an audit key the leader adds is kept
	// once the next one replaces it (whole seconds; at most
	// raftstore.MaxAuditKeyRetention).
	AuditKeyRetention time.Duration
	// Fatal is called once when the node must stop: an entry of an unknown
	// schema version, for one. The node stops applying entries first.
	Fatal func(error)
}

// Timing holds Raft's timeouts and snapshot policy.
type Timing struct {
	HeartbeatTimeout   time.Duration // a follower without contact this long starts an election
	ElectionTimeout    time.Duration // a candidate without a majority this long tries again
	LeaderLeaseTimeout time.Duration // a leader without a majority's contact this long steps down
	CommitTimeout      time.Duration // idle interval of the leader's appends (followers learn commits)
	ApplyTimeout       time.Duration // how long a command may wait to commit
	SnapshotInterval   time.Duration // how often to check whether to snapshot
	SnapshotThreshold  uint64        // entries since the last snapshot that trigger one
	TrailingLogs       uint64        // entries kept behind a snapshot for slow followers
}

// LANTiming is the timing for nodes on one LAN (sub-millisecond round
// trips): a dead leader is replaced within about a second, and a healthy
// one is not deposed by a busy follower's pause. See docs/operations.md.
func LANTiming() Timing {
	return Timing{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id: missing"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: missing"))
	}
	if c.Listen == "" {
		if len(c.Peers) > 1 || len(c.Join) > 0 || c.BootstrapExpect > 1 {
			errs = append(errs, errors.New("listen: a cluster of several nodes needs a cluster port"))
		}
	} else {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %w", err))
		}
		if c.ServerTLS == nil || c.ClientTLS == nil || c.PeerName == nil {
			errs = append(errs, errors.New("tls: a cluster port needs the cluster's certificates"))
		}
	}
	seen := map[string]bool{}
	self := false
	for i, p := range c.Peers {
		if p.ID == "" || p.Addr == "" {
			errs = append(errs, fmt.Errorf("peers[%d]: want id and address", i))
		}
		if seen[p.ID] {
			errs = append(errs, fmt.Errorf("peers[%d]: %s listed twice", i, p.ID))
		}
		seen[p.ID] = true
		self = self || p.ID == c.ID
	}
	if len(c.Peers) > 0 && !self {
		errs = append(errs, fmt.Errorf("peers: this node (%s) is not in the list", c.ID))
	}
	switch {
	case c.BootstrapExpect < 0:
		errs = append(errs, errors.New("bootstrap_expect: negative"))
	case c.BootstrapExpect > 1 && c.BootstrapExpect != len(c.Peers):
		errs = append(errs, fmt.Errorf("bootstrap_expect: %d, but %d peers are listed", c.BootstrapExpect, len(c.Peers)))
	case c.BootstrapExpect == 0 && len(c.Join) == 0 && len(c.Peers) == 0:
		errs = append(errs, errors.New("bootstrap_expect: 0 needs join addresses"))
	}
	t := c.Timing
	if t.HeartbeatTimeout <= 0 || t.ElectionTimeout <= 0 || t.LeaderLeaseTimeout <= 0 || t.CommitTimeout <= 0 || t.ApplyTimeout <= 0 {
		errs = append(errs, errors.New("timing: every timeout must be positive"))
	}
	if t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		errs = append(errs, errors.New("timing: leader_lease_timeout must not exceed heartbeat_timeout"))
	}
	if c.AuditKeyRotation < 0 {
		errs = append(errs, errors.New("audit key rotation: negative"))
	}
	if c.AuditKeyRetention < 0 || c.AuditKeyRetention > raftstore.MaxAuditKeyRetention {
		errs = append(errs, fmt.Errorf("audit key retention: %v not within 0 and %v", c.AuditKeyRetention, raftstore.MaxAuditKeyRetention))
	}
	if err := c.AutoBan.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
