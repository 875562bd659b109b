package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
	"github.com/chimalli/chimalli/tofu"
)

// clusterNode builds the node's member of the Raft cluster from cfg: with
// no cluster.listen, a cluster of one over no network; otherwise mutual TLS
// with the certificates in cluster.certs. It does not open it.
func clusterNode(cfg *config.Config, id string, logger *slog.Logger, hasher raftstore.AddrHasher,
	onLift func(netip.Prefix), onRules func(*cluster.RuleSet), fatal func(error)) (*cluster.Node, error) {
	peers, err := cfg.ClusterPeers()
	if err != nil {
		return nil, err
	}
	cc := cluster.Config{
		ID: id, Name: cfg.NATS.ClusterName, Dir: cfg.RaftDir(), Listen: cfg.Cluster.Listen, Bind: gateway.Listen, Advertise: cfg.Cluster.Advertise,
		BootstrapExpect: cfg.BootstrapExpect(), Join: cfg.Cluster.Join,
		Timing: cfg.ClusterTiming(), AutoBan: cfg.AutoBanPolicy(),
		Hasher: hasher, Logger: logger, OnLift: onLift, OnRules: onRules, Fatal: fatal,
		TicketRotation:   sessionKeyRotation(cfg),
		AuditKeyRotation: cfg.Audit.HashKeyRotation, AuditKeyRetention: cfg.Audit.HashKeyRetention,
	}
	for _, p := range peers {
		cc.Peers = append(cc.Peers, cluster.Peer{ID: p.ID, Addr: p.Addr})
	}
	if cfg.Cluster.Listen != "" {
		cred, err := nodeCredentials(cfg, id)
		if err != nil {
			return nil, err
		}
		if cc.ServerTLS, err = cred.ServerConfig(pki.KindNode); err != nil {
			return nil, fmt.Errorf("cluster.certs: %w", err)
		}
		cc.ClientTLS = cred.ClientConfig("")
		cc.PeerName = pki.PeerNodeName
	}
	return cluster.New(cc)
}

// nodeCredentials loads this node's certificate, key and the cluster
// authority from cluster.certs, and checks that the certificate names
// node id.
func nodeCredentials(cfg *config.Config, id string) (*pki.Credentials, error) {
	layout := &pki.Layout{Dir: cfg.Cluster.Certs}
	cred, err := pki.Load(layout.Node(id))
	if err != nil {
		return nil, fmt.Errorf("cluster.certs: %w", err)
	}
	if cred.Identity.Kind != pki.KindNode || cred.Identity.Name != id {
		return nil, fmt.Errorf("cluster.certs: the certificate names %s, not node %s", cred.Identity, id)
	}
	return cred, nil
}

// sessionKeyRotation is how often the leader adds a session-ticket key:
// every max(session lifetimes), as a node alone would rotate; zero (no
// keys) when tickets are off.
func sessionKeyRotation(cfg *config.Config) time.Duration {
	t := cfg.Gateway.TLS
	if !t.SessionTickets {
		return 0
	}
	return max(t.SessionLifetime, t.CertSessionLifetime, time.Minute)
}

// auditKeys serves the cluster's current audit key to the node's IP
// hasher (events.KeySource). The hasher exists before the cluster node
// (the node names clients in its logs with it), so the node is set once
// made; until then, and until the cluster's first key has been applied,
// the hasher hashes with a random key of its own.
type auditKeys struct{ node atomic.Pointer[cluster.Node] }

var _ events.KeySource = (*auditKeys)(nil)

// CurrentAuditKey implements events.KeySource.
func (k *auditKeys) CurrentAuditKey() (id string, key []byte, ok bool) {
	n := k.node.Load()
	if n == nil {
		return "", nil, false
	}
	return n.CurrentAuditKey()
}

// accessView is the gateway's access layer: the configuration's lists
// plus the replicated rules, rebuilt into one immutable gateway.AccessList
// whenever the rules change.
type accessView struct {
	allow, deny  []netip.Prefix // from the configuration file (node-local)
	defaultAllow bool
	cur          atomic.Pointer[gateway.AccessList]
}

func newAccessView(allow, deny []netip.Prefix, defaultAllow bool) *accessView {
	v := &accessView{allow: allow, deny: deny, defaultAllow: defaultAllow}
	v.cur.Store(gateway.NewAccessList(allow, deny, defaultAllow))
	return v
}

// update publishes the lists with rs's rules added. It runs on the FSM's
// goroutine when the rules change.
func (v *accessView) update(rs *cluster.RuleSet) {
	allow := append(append([]netip.Prefix(nil), v.allow...), rs.Allow()...)
	deny := append(append([]netip.Prefix(nil), v.deny...), rs.Deny()...)
	v.cur.Store(gateway.NewAccessList(allow, deny, v.defaultAllow))
}

// Check implements gateway.AccessPolicy.
func (v *accessView) Check(addr netip.Addr) gateway.Reason { return v.cur.Load().Check(addr) }

// ticketKeys serves the cluster's session-ticket keys to the gateway,
// newest first, leaving out a key once it has not sealed for keep (no
// ticket it sealed can be resumed any more).
type ticketKeys struct {
	node  *cluster.Node
	keep  time.Duration
	cache atomic.Pointer[ticketAnswer]
}

type ticketAnswer struct {
	src   []raftstore.TicketKeyData
	keys  []gateway.TicketKey
	until time.Time // the answer holds until a key retires
}

// TicketKeys implements gateway.TicketKeys.
func (t *ticketKeys) TicketKeys(now time.Time) []gateway.TicketKey {
	src := t.node.TicketKeys()
	if a := t.cache.Load(); a != nil && sameKeys(a.src, src) && now.Before(a.until) {
		return a.keys
	}
	a := &ticketAnswer{src: src, until: now.Add(time.Hour)}
	for i := len(src) - 1; i >= 0; i-- {
		if i < len(src)-1 {
			retired := src[i+1].Created.Add(t.keep)
			if !now.Before(retired) {
				break
			}
			a.until = minTime(a.until, retired)
		}
		a.keys = append(a.keys, gateway.TicketKey(src[i].Key))
	}
	t.cache.Store(a)
	return a.keys
}

func sameKeys(a, b []raftstore.TicketKeyData) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// importPins commits the pins of a node-local pin file (from before the
// cluster) as first-use claims, once: the file is renamed to
// <file>.imported afterwards. A subject already pinned in the cluster
// keeps its pin (the first wins, as for any claim). It runs in the
// background until it succeeds or ctx ends.
func importPins(ctx context.Context, node *cluster.Node, path string, log *slog.Logger) {
	store, err := openExistingPins(path)
	if err != nil || store == nil {
		if err != nil {
			log.Error("import pins", "file", path, "err", err)
		}
		return
	}
	for _, p := range store.All() {
		for {
			_, err := node.Apply(ctx, raftstore.Command{Op: raftstore.OpTrustClaim, Key: importKey(p.Key),
				PinKind: p.Key.Kind, Subject: p.Key.Scope, Identity: p.Identity, NotAfter: p.NotAfter})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("import pins: retrying", "file", path, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		log.Error("import pins", "file", path, "err", err)
		return
	}
	log.Info("pins imported into the cluster", "file", filepath.Base(path), "pins", len(store.All()))
}

// importKey is the idempotency key of one imported pin: the same on every
// node and every retry.
func importKey(k tofu.PinKey) string {
	sum := sha256.Sum256([]byte("import\x00" + k.Kind.String() + "\x00" + k.Scope))
	return hex.EncodeToString(sum[:])
}
