package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// backupCluster is three nodes that rotate ticket and audit keys (so a
// backup holds some), with a few bans, a rule and a pin committed.
func backupCluster(t *testing.T) (*testCluster, context.Context) {
	t.Helper()
	c := newTestClusterWith(t, func(cfg *Config) {
		cfg.Name = "test"
		cfg.TicketRotation, cfg.AuditKeyRotation, cfg.AuditKeyRetention = time.Hour, time.Hour, time.Hour
	}, nil, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	l := c.leader()
	for i := range 5 {
		if _, err := l.Apply(ctx, banCmd(fmt.Sprintf("192.0.2.%d/32", i))); err != nil {
			t.Fatal(err)
		}
	}
	cmds := []raftstore.Command{
		{Op: raftstore.OpRuleAdd, List: raftstore.ListDeny, Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Op: raftstore.OpTrustApprove, PinKind: tofu.PinUpstream, Subject: "backend:1965", Identity: tofu.Identity{SPKI: [32]byte{7}}},
	}
	for _, cmd := range cmds {
		if _, err := c.follower().Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the keys", func() bool { return len(l.TicketKeys()) == 1 && len(l.AuditKeys()) == 1 })
	c.sameHash(t, "")
	return c, ctx
}

// sameHash waits until every running node has the state hash want (any
// one hash, when want is empty) and returns it.
func (c *testCluster) sameHash(t *testing.T, want string) string {
	t.Helper()
	var h string
	waitFor(t, 15*time.Second, "every node at state hash "+want, func() bool {
		h = ""
		for _, n := range c.nodes {
			s := n.Status().StateHash
			if (want != "" && s != want) || (h != "" && s != h) {
				return false
			}
			h = s
		}
		return true
	})
	return h
}

// A backup taken on a follower and restored through another follower
// replaces the state on every node (the leader restores, the followers
// install the snapshot); a restarted node keeps it; consistent reads,
// writes and the committed log go on.
func TestClusterBackupRestoreThroughFollowers(t *testing.T) {
	c, ctx := backupCluster(t)
	l := c.leader()
	var saver, restorer *Node
	for _, n := range c.nodes {
		if n != l && saver == nil {
			saver = n
		} else if n != l {
			restorer = n
		}
	}
	var file bytes.Buffer
	h, err := saver.Backup(ctx, &file)
	if err != nil {
		t.Fatal(err)
	}
	saved := saver.Status()
	if h.SHA256 != saved.StateHash || h.Index != saved.AppliedIndex || h.Node != saver.ID() || h.Cluster != "test" ||
		h.Bans != 5 || h.Rules != 1 || h.Pins != 1 || h.Tickets != 1 || h.Audit != 1 || h.Term == 0 {
		t.Fatalf("backup header %+v; the saver's status %+v", h, saved)
	}

	// The state moves on: more bans, a lift, a rule removed.
	for i := range 20 {
		if _, err := restorer.Apply(ctx, banCmd(fmt.Sprintf("203.0.113.%d/32", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Apply(ctx, raftstore.Command{Op: raftstore.OpBanLift, Prefix: netip.MustParsePrefix("192.0.2.0/32")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, raftstore.Command{Op: raftstore.OpRuleRemove, List: raftstore.ListDeny, Prefix: netip.MustParsePrefix("198.51.100.0/24")}); err != nil {
		t.Fatal(err)
	}
	if c.sameHash(t, "") == h.SHA256 {
		t.Fatal("the state did not move on")
	}

	res, err := restorer.Restore(ctx, bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Leader != l.ID() || res.StateHash != h.SHA256 || res.Index != h.Index || res.Bans != 5 || res.Rules != 1 || res.Pins != 1 {
		t.Fatalf("restore result %+v, backup %+v", res, h)
	}
	// The node that was asked holds the restored state on return.
	if got := restorer.Status(); got.StateHash != h.SHA256 {
		t.Fatalf("the restoring node's state hash %s, want %s", got.StateHash, h.SHA256)
	}
	c.sameHash(t, h.SHA256)
	for _, n := range c.nodes {
		if !n.Banned(netip.MustParseAddr("192.0.2.0"), time.Now()) || n.Banned(netip.MustParseAddr("203.0.113.3"), time.Now()) {
			t.Fatalf("%s does not enforce the restored bans", n.ID())
		}
		if !slices.Contains(n.Rules(), raftstore.Rule{List: raftstore.ListDeny, Prefix: netip.MustParsePrefix("198.51.100.0/24")}) {
			t.Fatalf("%s lacks the restored deny rule", n.ID())
		}
		// Every node counts itself as far as the leader: a consistent
		// read on it returns without waiting for another write.
		if _, err := n.ReadIndex(ctx); err != nil {
			t.Fatalf("%s: consistent read after the restore: %v", n.ID(), err)
		}
	}
	// The leader's committed log holds no gap a reader trips over.
	first, last, err := l.CommittedRange()
	if err != nil || first <= h.Index || first > res.RaftIndex+1 {
		t.Fatalf("CommittedRange = %d, %d, %v after a restore at %d", first, last, err, res.RaftIndex)
	}
	if err := l.ReadCommitted(first, last, func(uint64, raftstore.Event) error { return nil }); err != nil {
		t.Fatalf("ReadCommitted after the restore: %v", err)
	}

	// A restarted node keeps the restored state.
	c.stop(saver.ID())
	back := c.start(saver.ID())
	if got := back.Status().StateHash; got != h.SHA256 {
		t.Fatalf("the restarted node starts at state hash %s, want %s", got, h.SHA256)
	}
	c.sameHash(t, h.SHA256)

	// Writes go on, on top of the restored state, and reach every node.
	if _, err := restorer.Apply(ctx, banCmd("203.0.113.200/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the write after the restore on every node", func() bool { return c.allBanned("203.0.113.200") })
	after := c.sameHash(t, "")
	c.leader().Read(func(st *raftstore.State) {
		if st.Bans().Len() != 6 {
			t.Fatalf("%d bans after the restore and one ban, want 6", st.Bans().Len())
		}
	})
	// And survive a restart of the whole cluster.
	for _, id := range []string{"n1", "n2", "n3"} {
		c.stop(id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		c.start(id)
	}
	c.sameHash(t, after)
}

// A corrupt or foreign backup is refused, whichever node is asked, and
// changes nothing.
func TestClusterRestoreRefusesBadBackup(t *testing.T) {
	c, ctx := backupCluster(t)
	var file bytes.Buffer
	if _, err := c.follower().Backup(ctx, &file); err != nil {
		t.Fatal(err)
	}
	good := file.Bytes()
	if _, err := c.leader().Apply(ctx, banCmd("203.0.113.1/32")); err != nil {
		t.Fatal(err)
	}
	hash := c.sameHash(t, "")
	l := c.leader()
	if _, err := l.ReadIndex(ctx); err != nil { // the leader's own no-op and nudges are in
		t.Fatal(err)
	}
	before := l.Status()
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 0x20
	for _, tt := range []struct {
		name string
		file []byte
		want string
	}{
		{"flipped byte", flipped, "checksum mismatch"},
		{"truncated", good[:len(good)*2/3], "truncated"},
		{"wrong version", bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":9,`), 1), "format version 9"},
		{"empty", nil, "empty file"},
	} {
		for _, n := range []*Node{c.follower(), l} {
			_, err := n.Restore(ctx, bytes.NewReader(tt.file))
			if !errors.Is(err, raftstore.ErrBadBackup) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%s through %s: %v, want an ErrBadBackup containing %q", tt.name, n.ID(), err, tt.want)
			}
		}
	}
	after := l.Status()
	if after.StateHash != hash || after.AppliedIndex != before.AppliedIndex || after.LastIndex != before.LastIndex {
		t.Fatalf("refused restores changed the leader: %+v, was %+v", after, before)
	}
	c.sameHash(t, hash)
}
