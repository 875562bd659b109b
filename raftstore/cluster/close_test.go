package cluster

import (
	"context"
	"testing"
	"time"
)

// closeBound is how long Close may take with a peer vanished. Without
// cutting its connections, Close waits for Raft's replication to the dead
// peer, whose RPC (or dial) gives up only after the transport's 10 s
// timeout: a node stopped by a supervisor with a grace period of about
// that long would be killed before it closes its log.
const closeBound = 8 * time.Second

// vanishingCluster starts three nodes, each of whose cluster port goes
// through a blackhole, and releases the holes once the test's nodes are
// closed.
func vanishingCluster(t *testing.T) (*testCluster, map[string]*blackhole) {
	holes := map[string]*blackhole{}
	// Registered first, so it runs after the nodes are closed: a cut
	// node's close sends nothing.
	t.Cleanup(func() {
		for _, h := range holes {
			h.release()
		}
	})
	c := newTestClusterWith(t, nil, func(n *Node) {
		h := &blackhole{listen: n.cfg.Listen}
		holes[n.ID()] = h
		n.wrapConn = h.wrap
	}, "n1", "n2", "n3")
	return c, holes
}

// timedClose closes n and returns how long Close took.
func timedClose(t *testing.T, c *testCluster, n *Node) time.Duration {
	t.Helper()
	start := time.Now()
	c.stop(n.ID())
	return time.Since(start)
}

// A follower vanishes (no FIN, no RST: a SIGKILLed container); the leader,
// whose replication to it is stuck in an RPC, is then stopped. Close
// returns promptly; the remaining follower closes promptly too.
func TestCloseReturnsPromptlyWhenFollowerVanishes(t *testing.T) {
	c, holes := vanishingCluster(t)
	l := c.leader()
	var gone, other *Node
	for _, n := range c.nodes {
		if n == l {
			continue
		}
		if gone == nil {
			gone = n
		} else {
			other = n
		}
	}
	holes[gone.ID()].cut.Store(true)
	// A write commits with the other follower; the leader's replication
	// to the vanished one is now waiting on it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Apply(ctx, banCmd("192.0.2.80/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, other.ID()+" to apply the ban", func() bool { _, ok := strikes(other, "192.0.2.80/32"); return ok })

	took := timedClose(t, c, l)
	t.Logf("leader %s closed in %v with follower %s vanished", l.ID(), took, gone.ID())
	if took > closeBound {
		t.Errorf("the leader's Close took %v with a vanished follower, want under %v", took, closeBound)
	}
	took = timedClose(t, c, other)
	t.Logf("follower %s closed in %v with %s vanished and %s closed", other.ID(), took, gone.ID(), l.ID())
	if took > closeBound {
		t.Errorf("the follower's Close took %v, want under %v", took, closeBound)
	}
}

// The leader vanishes; the two others elect a new leader, which replicates
// to (and redials) the dead one. Closing the new leader, then the last
// node, returns promptly.
func TestCloseReturnsPromptlyWhenLeaderVanishes(t *testing.T) {
	c, holes := vanishingCluster(t)
	old := c.leader()
	holes[old.ID()].cut.Store(true)
	var survivors []*Node
	for _, n := range c.nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	var nl, other *Node
	waitFor(t, 20*time.Second, "the survivors to elect a new leader", func() bool {
		a, _ := survivors[0].Leader()
		b, _ := survivors[1].Leader()
		if a == "" || a != b || a == old.ID() {
			return false
		}
		nl, other = c.nodes[a], survivors[0]
		if other == nl {
			other = survivors[1]
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.Apply(ctx, banCmd("192.0.2.81/32")); err != nil {
		t.Fatal(err)
	}

	took := timedClose(t, c, nl)
	t.Logf("new leader %s closed in %v with the old leader %s vanished", nl.ID(), took, old.ID())
	if took > closeBound {
		t.Errorf("the new leader's Close took %v with a vanished peer, want under %v", took, closeBound)
	}
	took = timedClose(t, c, other)
	t.Logf("node %s closed in %v with %s vanished and %s closed", other.ID(), took, old.ID(), nl.ID())
	if took > closeBound {
		t.Errorf("the last node's Close took %v, want under %v", took, closeBound)
	}
}
