package admin

import (
	"context"
	"errors"
	"fmt"
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

// stateAPI serves the endpoints that read and change the State: bans,
// rules and trust.
type stateAPI struct{ st State }

// remove commits cmd, which removes something, and answers 200 with the
// entry's index, or 404 with the error notFound when there was nothing to
// remove. A retry of a removal already committed (a duplicate) answers 200.
func (s stateAPI) remove(w http.ResponseWriter, r *http.Request, cmd raftstore.Command, notFound string) {
	res, err := s.st.Apply(r.Context(), cmd)
	if err != nil {
		writeApplyError(w, err)
		return
	}
	if !res.Changed && res.Duplicate == 0 {
		writeJSON(w, http.StatusNotFound, statusBody{Status: "not_found", Error: notFound})
		return
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "ok", Index: res.Index})
}

// queryFilter parses the query parameter name, a listing's filter, with
// parse; it returns the zero T when the parameter is absent or empty, and
// reports false after answering a value parse refuses.
func queryFilter[T any](w http.ResponseWriter, r *http.Request, name string, parse func(string) (T, error)) (T, bool) {
	var zero T
	v := r.URL.Query().Get(name)
	if v == "" {
		return zero, true
	}
	only, err := parse(v)
	if err != nil {
		badRequest(w, err)
		return zero, false
	}
	return only, true
}

// writeApplyError answers a failed Apply: 400 for a refused command, 503
// when the outcome is unknown (no leader, timeout: the caller may retry).
func writeApplyError(w http.ResponseWriter, err error) {
	if errors.Is(err, raftstore.ErrRefused) || errors.Is(err, raftstore.ErrInvalidCommand) {
		badRequest(w, err)
		return
	}
	unavailable(w, err)
}

// consistent runs ReadIndex when the request asks for a linearizable read
// (?consistent=1); it reports false after answering an error.
func (s stateAPI) consistent(w http.ResponseWriter, r *http.Request) bool {
	if v := r.URL.Query().Get("consistent"); v == "" || v == "0" || v == "false" {
		return true
	}
	if _, err := s.st.ReadIndex(r.Context()); err != nil {
		unavailable(w, fmt.Errorf("consistent read: %w", err))
		return false
	}
	return true
}
