package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

func TestHealthLeaderAndFollower(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Apply(ctx, banCmd("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every node applied the ban", func() bool { return c.allBanned("192.0.2.1") })

	lh := l.Health()
	if lh.State != "leader" || lh.Leader != l.ID() || lh.LastContact != 0 || lh.Term == 0 || lh.Failed != "" {
		t.Errorf("leader health = %+v", lh)
	}
	if lh.HeartbeatTimeout != testTiming().HeartbeatTimeout {
		t.Errorf("heartbeat timeout %s, want the node's %s", lh.HeartbeatTimeout, testTiming().HeartbeatTimeout)
	}
	f := c.follower()
	// Raft's applied index counts its own no-op entries: on a follower
	// that has applied the ban, it reaches the commit index it knows.
	waitFor(t, 10*time.Second, "the follower applied what it knows committed", func() bool {
		h := f.Health()
		return h.CommitIndex > 0 && h.AppliedIndex == h.CommitIndex
	})
	fh := f.Health()
	if fh.State != "follower" || fh.Leader != l.ID() || fh.LastContact < 0 || fh.Term != lh.Term {
		t.Errorf("follower health = %+v (leader term %d)", fh, lh.Term)
	}
}

func TestHealthBeforeOpen(t *testing.T) {
	n, err := New(Config{ID: "solo", Dir: t.TempDir(), BootstrapExpect: 1, AutoBan: raftstore.DefaultAutoBanPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	if h := n.Health(); h.State != "shutdown" || h.Leader != "" || h.LastContact != -1 {
		t.Errorf("health before Open = %+v", h)
	}
}
