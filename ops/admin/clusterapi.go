package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// Cluster is what the admin API needs of the cluster's membership.
// cluster.Node implements it: changes go to the leader from any node.
type Cluster interface {
	// Status returns this node's view of the cluster.
	Status() cluster.Status
	// AddVoter adds a node (or updates its address) through the leader.
	AddVoter(ctx context.Context, p cluster.Peer) error
	// RemoveServer removes a node through the leader.
	RemoveServer(ctx context.Context, id string) error
}

// JoinRequest is the body of POST /cluster/join: admit node ID, whose
// cluster port other nodes reach at Addr.
type JoinRequest struct {
	ID   string `json:"id"`   // the node id, the name in its certificate
	Addr string `json:"addr"` // its advertised cluster port, host:port
}

// LeaveRequest is the body of POST /cluster/leave: remove node ID.
type LeaveRequest struct {
	ID string `json:"id"`
}

// Peer checks r and returns the peer to add.
func (r JoinRequest) Peer() (cluster.Peer, error) {
	if len(r.ID) > maxNodeIDLen {
		return cluster.Peer{}, fmt.Errorf("id: %d bytes: a node id is the DNS label in its certificate, at most %d", len(r.ID), maxNodeIDLen)
	}
	if err := pki.ValidateName(r.ID); err != nil {
		return cluster.Peer{}, fmt.Errorf("id: %w (a node id is the DNS label in its certificate)", err)
	}
	host, ok := splitHostPort(r.Addr)
	if !ok {
		return cluster.Peer{}, fmt.Errorf("addr: %s is not host:port (the node's advertised cluster port)", quoteShort(r.Addr))
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		return cluster.Peer{}, fmt.Errorf("addr: %s is not an address other nodes can reach (the node's cluster.advertise)", quoteShort(r.Addr))
	}
	return cluster.Peer{ID: r.ID, Addr: r.Addr}, nil
}

// maxNodeIDLen is the longest node id: a DNS label.
const maxNodeIDLen = 63

// maxClusterBody bounds a POST /cluster/join or /cluster/leave body.
const maxClusterBody = 4 << 10

// HandleCluster serves the cluster's membership: GET /cluster/status is
// this node's view (its state, the leader, term, indexes, members, state
// hash), POST /cluster/join admits a node, POST /cluster/leave removes
// one. Changes go through the leader from any node and answer once the new
// configuration is committed.
func (a *Admin) HandleCluster(c Cluster) {
	a.mux.Handle("/cluster/status", methods{get: func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	}})
	a.mux.Handle("/cluster/join", methods{post: func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if !decodeBody(w, r, maxClusterBody, &req) {
			return
		}
		p, err := req.Peer()
		if err != nil {
			badRequest(w, err)
			return
		}
		if err := c.AddVoter(r.Context(), p); err != nil {
			unavailable(w, fmt.Errorf("join %s: %w", p.ID, err))
			return
		}
		writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
	}})
	a.mux.Handle("/cluster/leave", methods{post: func(w http.ResponseWriter, r *http.Request) {
		var req LeaveRequest
		if !decodeBody(w, r, maxClusterBody, &req) {
			return
		}
		peers := c.Status().Peers
		switch {
		case req.ID == "":
			badRequest(w, fmt.Errorf("id: missing"))
			return
		case !slices.Contains(peers, req.ID):
			writeJSON(w, http.StatusNotFound, statusBody{Status: "not_found", Error: fmt.Sprintf("no member %s (members: %v)", quoteShort(req.ID), peers)})
			return
		case len(peers) == 1:
			badRequest(w, fmt.Errorf("id: %s is the cluster's only member: removing it would leave no cluster", req.ID))
			return
		}
		if err := c.RemoveServer(r.Context(), req.ID); err != nil {
			unavailable(w, fmt.Errorf("leave %s: %w", req.ID, err))
			return
		}
		writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
	}})
}

// unavailable answers a change whose outcome is unknown (no leader, a
// timeout): the caller may retry.
func unavailable(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
}
