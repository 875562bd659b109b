package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// State is what the admin API needs of the cluster's state. Writes go
// through Apply, which commits through the leader from any node (a
// follower forwards) and returns the committed result; reads come from
// this node's applied state, made linearizable on request by ReadIndex.
// cmd/node plugs the Raft node in.
type State interface {
	// Apply commits cmd and returns once it is applied on this node. An
	// error wrapping raftstore.ErrRefused means the command was invalid and
	// nothing was committed; any other error leaves the outcome unknown.
	Apply(ctx context.Context, cmd raftstore.Command) (raftstore.Result, error)
	// ReadIndex returns once this node has applied every write committed
	// before the call (it asks the leader).
	ReadIndex(ctx context.Context) (uint64, error)
	// ActiveBans returns the bans active at now, sorted by prefix.
	ActiveBans(now time.Time) []raftstore.Ban
	// Rules returns the replicated access rules, sorted.
	Rules() []raftstore.Rule
	// Pins returns the TOFU pins, sorted by kind then subject.
	Pins() []tofu.Pin
}

// writeApplyError answers a failed Apply: 400 for a refused command, 503
// when the outcome is unknown (no leader, timeout: the caller may retry).
func writeApplyError(w http.ResponseWriter, err error) {
	if errors.Is(err, raftstore.ErrRefused) || errors.Is(err, raftstore.ErrInvalidCommand) {
		badRequest(w, err)
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
}

// consistent runs ReadIndex when the request asks for a linearizable read
// (?consistent=1); it reports false after answering an error.
func consistent(w http.ResponseWriter, r *http.Request, st State) bool {
	if v := r.URL.Query().Get("consistent"); v == "" || v == "0" || v == "false" {
		return true
	}
	if _, err := st.ReadIndex(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: "consistent read: " + err.Error()})
		return false
	}
	return true
}
