package cluster

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

// blackhole makes one node vanish from the network the way a container
// killed with SIGKILL does: once cut, nothing it sends arrives, nothing
// sent to it is answered, and its connections are never closed towards
// the peers (no FIN, no RST). Its listener still accepts at the TCP level
// (loopback has no SYN to drop), but no TLS handshake completes, so a new
// dial hangs as it would against a dead address.
type blackhole struct {
	listen string      // the node's cluster port: connections accepted there are the node's server side
	cut    atomic.Bool // everything is dropped
	// armed cuts the node at the first write on a connection it accepted:
	// on a settled leader that is its answer to a forwarded command, which
	// it has committed by then. The answer is lost.
	armed atomic.Bool

	mu    sync.Mutex
	gone  bool       // released: the node's host is gone for good
	conns []net.Conn // the raw connections, closed by release
}

type holeConn struct {
	net.Conn
	h        *blackhole
	accepted bool
}

func (h *blackhole) wrap(c net.Conn) net.Conn {
	h.mu.Lock()
	if h.gone {
		c.Close() // the port is closed: reset
	} else {
		h.conns = append(h.conns, c)
	}
	h.mu.Unlock()
	return &holeConn{Conn: c, h: h, accepted: c.LocalAddr().String() == h.listen}
}

// release ends the cut as if the node's host were gone for good: every
// connection it had is closed (the peers see them end), and any new one
// is closed at once.
func (h *blackhole) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

func (c *holeConn) Write(b []byte) (int, error) {
	if c.accepted && c.h.armed.CompareAndSwap(true, false) {
		c.h.cut.Store(true)
	}
	if c.h.cut.Load() {
		return len(b), nil // sent into the void
	}
	return c.Conn.Write(b)
}

func (c *holeConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if !c.h.cut.Load() || err != nil {
			return n, err
		}
		// Arrived while cut: dropped. Read again (a deadline still ends
		// the wait).
	}
}

// Close while cut sends nothing to the peer: the connection only stops
// here (its blocked reads return); release closes it.
func (c *holeConn) Close() error {
	c.h.mu.Lock()
	hold := c.h.cut.Load() && !c.h.gone
	c.h.mu.Unlock()
	if hold {
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	return c.Conn.Close()
}

func strikes(n *Node, p string) (int, bool) {
	var b raftstore.Ban
	var ok bool
	n.Read(func(st *raftstore.State) { b, ok = st.Bans().Lookup(netip.MustParsePrefix(p)) })
	return b.Strikes, ok
}

// A follower forwards a write to the leader; the leader commits it and
// vanishes before its answer arrives (as on SIGKILL of its container: no
// RST, packets dropped). The follower must notice the leader is gone,
// abort the forward and retry at the new leader, which finds the command
// already applied: the write succeeds long before the caller's deadline,
// and applies once. Before the fix the forward hung until the deadline.
func TestForwardFailsOverWhenLeaderVanishes(t *testing.T) {
	c, holes := vanishingCluster(t)
	l := c.leader()
	a := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Warm the forwarding pool: a few concurrent writes leave idle
	// connections from a to l.
	var wg sync.WaitGroup
	for _, p := range []string{"192.0.2.90/32", "192.0.2.92/32", "192.0.2.93/32"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Apply(ctx, banCmd(p)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	a.fwd.mu.Lock()
	pooled := len(a.fwd.idle[l.Addr()])
	a.fwd.mu.Unlock()

	holes[l.ID()].armed.Store(true)
	cmd := banCmd("192.0.2.91/32")
	cmd.Key = raftstore.NewKey()
	start := time.Now()
	res, err := a.Apply(ctx, cmd)
	took := time.Since(start)
	t.Logf("forwarded write through %s to the vanishing leader %s returned after %v (%d pooled connections to it): index %d, duplicate %d, err %v",
		a.ID(), l.ID(), took, pooled, res.Index, res.Duplicate, err)
	if err != nil {
		t.Fatalf("the forwarded write failed: %v", err)
	}
	if !holes[l.ID()].cut.Load() {
		t.Fatal("the leader was never cut")
	}
	// Exactly once: the ban was added once on every surviving node (a
	// second application would count a second strike), and the write is
	// visible on a at once.
	if s, ok := strikes(a, "192.0.2.91/32"); !ok || s != 1 {
		t.Fatalf("on %s the ban has %d strikes (present %v), want 1", a.ID(), s, ok)
	}
	for _, n := range c.nodes {
		if n == l {
			continue
		}
		waitFor(t, 5*time.Second, n.ID()+" to apply the ban", func() bool { _, ok := strikes(n, "192.0.2.91/32"); return ok })
		if s, _ := strikes(n, "192.0.2.91/32"); s != 1 {
			t.Fatalf("on %s the ban has %d strikes, want 1", n.ID(), s)
		}
	}
	// The key dedups a further retry.
	again, err := a.Apply(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicate == 0 || again.Changed {
		t.Fatalf("a retry with the same key: %+v, want a duplicate", again)
	}
	if s, _ := strikes(a, "192.0.2.91/32"); s != 1 {
		t.Fatalf("after a retry the ban has %d strikes, want 1", s)
	}
	// No idle connection to the dead leader is left for a later forward.
	waitFor(t, 5*time.Second, "the pool to drop the old leader's connections", func() bool {
		a.fwd.mu.Lock()
		defer a.fwd.mu.Unlock()
		return len(a.fwd.idle[l.Addr()]) == 0
	})
	// The dead leader's host goes for good: its connections end and its
	// port closes, so no node's Raft waits on it and they close promptly.
	holes[l.ID()].release()
	c.stop(l.ID())
}
