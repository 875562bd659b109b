package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReady(t *testing.T) {
	hb := 500 * time.Millisecond
	follower := Raft{State: StateFollower, Term: 4, Leader: "n1", LastContact: 40 * time.Millisecond,
		HeartbeatTimeout: hb, CommitIndex: 1000, AppliedIndex: 1000, LastIndex: 1000}
	with := func(f func(r *Raft)) Raft { r := follower; f(&r); return r }
	tests := []struct {
		name string
		r    Raft
		want string // "" for ready, else a substring of the reason
	}{
		{"caught-up follower", follower, ""},
		{"caught-up leader", with(func(r *Raft) { r.State, r.Leader, r.LastContact = StateLeader, "self", 0 }), ""},
		{"lone node just elected", Raft{State: StateLeader, Term: 2, Leader: "solo", HeartbeatTimeout: 50 * time.Millisecond, CommitIndex: 2, AppliedIndex: 1}, ""},
		{"applied within the lag", with(func(r *Raft) { r.AppliedIndex = r.CommitIndex - MaxApplyLag }), ""},
		{"applied ahead of a stale commit index", with(func(r *Raft) { r.CommitIndex = 0 }), ""},
		{"contact at the bound", with(func(r *Raft) { r.LastContact = ContactTimeouts * hb }), ""},
		{"no leader", with(func(r *Raft) { r.Leader = "" }), "no leader known"},
		{"candidate", with(func(r *Raft) { r.State = StateCandidate }), "raft is candidate"},
		{"shut down", with(func(r *Raft) { r.State = StateShutdown }), "raft is shutdown"},
		{"state machine stopped", with(func(r *Raft) { r.Failed = "unknown schema version 9" }), "cluster state stopped: unknown schema version 9"},
		{"behind", with(func(r *Raft) { r.AppliedIndex = r.CommitIndex - MaxApplyLag - 1 }), "applied index 935 is 65 entries behind commit index 1000"},
		{"far behind after a restart", with(func(r *Raft) { r.AppliedIndex = 0 }), "1000 entries behind"},
		{"leader silent", with(func(r *Raft) { r.LastContact = ContactTimeouts*hb + time.Millisecond }), "last heard from leader n1 1.001s ago (more than 1s)"},
		{"never heard from the leader", with(func(r *Raft) { r.LastContact = -1 }), "never heard from leader n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Ready(tt.r)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Ready = %v, want ready", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("ready, want %q", tt.want)
			case !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("Ready = %q, want one line wrapping ErrNotReady with %q", err, tt.want)
			}
		})
	}
}
