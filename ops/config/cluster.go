package config

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chimalli/chimalli/raftstore/cluster"
)

// ClusterConfig configures the node's membership of the cluster whose Raft
// log holds bans, replicated access rules, TOFU pins and session-ticket
// keys. With no listen address the node is a cluster of one: Raft runs in
// the process, nothing listens, and no certificates are needed.
type ClusterConfig struct {
	// Listen is the cluster port ("host:port"): Raft and command
	// forwarding, over mutual TLS with the cluster's certificates. Empty: a
	// single node with no cluster port.
	Listen string `koanf:"listen"`
	// Advertise is the address other nodes reach this one at; empty means
	// the listen address (which must then not be a wildcard).
	Advertise string `koanf:"advertise"`
	// Peers is the static list of the cluster's first voters, this node
	// included, each "id=host:port" (the peer's advertised cluster port).
	// Every node of a new cluster gets the same list.
	Peers []string `koanf:"peers"`
	// BootstrapExpect is how many voters a new cluster starts with: the
	// number of peers (the default when peers are listed), 1 for a single
	// node (the default otherwise), or 0 for a node that joins a running
	// cluster through join.
	BootstrapExpect int `koanf:"bootstrap_expect"`
	// Join lists cluster ports ("host:port") of running members to ask for
	// admission, for a node with no Raft state that does not bootstrap.
	Join []string `koanf:"join"`
	// Certs is the directory `chimalli cluster init` wrote: ca.crt and
	// this node's <node.id>.crt and <node.id>.key. Required with listen.
	Certs string `koanf:"certs"`
	// Raft's timing (LAN defaults; see docs/operations.md).
	HeartbeatTimeout   time.Duration `koanf:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `koanf:"election_timeout"`
	LeaderLeaseTimeout time.Duration `koanf:"leader_lease_timeout"`
	CommitTimeout      time.Duration `koanf:"commit_timeout"`
	ApplyTimeout       time.Duration `koanf:"apply_timeout"`
	SnapshotInterval   time.Duration `koanf:"snapshot_interval"`
	SnapshotThreshold  int           `koanf:"snapshot_threshold"`
	TrailingLogs       int           `koanf:"trailing_logs"`
}

func defaultCluster() ClusterConfig {
	t := cluster.LANTiming()
	return ClusterConfig{
		Peers:              []string{},
		BootstrapExpect:    -1, // derived: see ClusterConfig.BootstrapExpect
		Join:               []string{},
		HeartbeatTimeout:   t.HeartbeatTimeout,
		ElectionTimeout:    t.ElectionTimeout,
		LeaderLeaseTimeout: t.LeaderLeaseTimeout,
		CommitTimeout:      t.CommitTimeout,
		ApplyTimeout:       t.ApplyTimeout,
		SnapshotInterval:   t.SnapshotInterval,
		SnapshotThreshold:  int(t.SnapshotThreshold),
		TrailingLogs:       int(t.TrailingLogs),
	}
}

// ClusterPeer is one entry of cluster.peers.
type ClusterPeer struct{ ID, Addr string }

// ParsePeer parses "id=host:port".
func ParsePeer(s string) (ClusterPeer, error) {
	id, addr, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || id == "" || addr == "" {
		return ClusterPeer{}, fmt.Errorf("%q: want id=host:port", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return ClusterPeer{}, fmt.Errorf("%q: address %q is not host:port", s, addr)
	}
	return ClusterPeer{ID: id, Addr: addr}, nil
}

// ClusterPeers returns cluster.peers parsed.
func (c *Config) ClusterPeers() ([]ClusterPeer, error) {
	var out []ClusterPeer
	for _, s := range c.Cluster.Peers {
		p, err := ParsePeer(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// BootstrapExpect returns cluster.bootstrap_expect, or the number of peers
// when it is unset (1 without peers).
func (c *Config) BootstrapExpect() int {
	if c.Cluster.BootstrapExpect >= 0 {
		return c.Cluster.BootstrapExpect
	}
	if len(c.Cluster.Join) > 0 && len(c.Cluster.Peers) == 0 {
		return 0
	}
	return max(len(c.Cluster.Peers), 1)
}

// RaftDir returns where the node keeps its Raft log and snapshots:
// <data_dir>/raft.
func (c *Config) RaftDir() string { return filepath.Join(c.Node.DataDir, "raft") }

// ClusterTiming returns the Raft timing of the configuration.
func (c *Config) ClusterTiming() cluster.Timing {
	k := c.Cluster
	return cluster.Timing{
		HeartbeatTimeout: k.HeartbeatTimeout, ElectionTimeout: k.ElectionTimeout,
		LeaderLeaseTimeout: k.LeaderLeaseTimeout, CommitTimeout: k.CommitTimeout, ApplyTimeout: k.ApplyTimeout,
		SnapshotInterval: k.SnapshotInterval, SnapshotThreshold: uint64(max(k.SnapshotThreshold, 0)),
		TrailingLogs: uint64(max(k.TrailingLogs, 0)),
	}
}

func (c *Config) validateCluster(v *validator) {
	k := c.Cluster
	if k.Listen != "" {
		v.hostPort("cluster.listen", k.Listen)
		if k.Certs == "" {
			v.add("cluster.certs", "required with cluster.listen: the directory `chimalli cluster init` wrote")
		}
		if c.Node.ID == "" {
			v.add("node.id", "required with cluster.listen: the name in this node's certificate")
		}
	} else if len(k.Peers) > 1 || len(k.Join) > 0 {
		v.add("cluster.listen", "required for a cluster of several nodes (cluster.peers or cluster.join are set)")
	}
	if k.Advertise != "" {
		v.hostPort("cluster.advertise", k.Advertise)
	}
	var ids []string
	self := false
	for i, s := range k.Peers {
		p, err := ParsePeer(s)
		if err != nil {
			v.addErr(fmt.Sprintf("cluster.peers[%d]", i), err)
			continue
		}
		if slices.Contains(ids, p.ID) {
			v.add(fmt.Sprintf("cluster.peers[%d]", i), "%s listed twice", p.ID)
		}
		ids = append(ids, p.ID)
		self = self || p.ID == c.Node.ID
	}
	if len(k.Peers) > 0 && c.Node.ID != "" && !self {
		v.add("cluster.peers", "this node (node.id %q) is not in the list", c.Node.ID)
	}
	for i, s := range k.Join {
		v.hostPort(fmt.Sprintf("cluster.join[%d]", i), s)
	}
	if be := k.BootstrapExpect; be >= 0 {
		switch {
		case be > 1 && be != len(k.Peers):
			v.add("cluster.bootstrap_expect", "%d, but %d peers are listed: list every first voter in cluster.peers", be, len(k.Peers))
		case be == 0 && len(k.Join) == 0:
			v.add("cluster.bootstrap_expect", "0 (join a running cluster) needs cluster.join")
		}
	} else if k.BootstrapExpect != -1 {
		v.add("cluster.bootstrap_expect", "must be >= 0, got %d", k.BootstrapExpect)
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"cluster.heartbeat_timeout", k.HeartbeatTimeout}, {"cluster.election_timeout", k.ElectionTimeout},
		{"cluster.leader_lease_timeout", k.LeaderLeaseTimeout}, {"cluster.commit_timeout", k.CommitTimeout},
		{"cluster.apply_timeout", k.ApplyTimeout}, {"cluster.snapshot_interval", k.SnapshotInterval}} {
		v.positive(d.key, d.val)
	}
	if k.LeaderLeaseTimeout > k.HeartbeatTimeout {
		v.add("cluster.leader_lease_timeout", "must not exceed cluster.heartbeat_timeout (%s)", k.HeartbeatTimeout)
	}
	v.positiveInt("cluster.snapshot_threshold", k.SnapshotThreshold)
	v.positiveInt("cluster.trailing_logs", k.TrailingLogs)
}
