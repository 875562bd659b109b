package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// partition cuts one node off the network of a test cluster: every TCP
// connection of its cluster port, accepted or dialled, existing or new,
// fails while the cut holds. The other nodes keep their connections to
// each other.
type partition struct {
	mu    sync.Mutex
	cut   atomic.Bool
	conns []*cuttableConn
}

type cuttableConn struct {
	net.Conn
	p *partition
}

func (p *partition) wrap(c net.Conn) net.Conn {
	cc := &cuttableConn{Conn: c, p: p}
	p.mu.Lock()
	p.conns = append(p.conns, cc)
	p.mu.Unlock()
	if p.cut.Load() {
		c.Close()
	}
	return cc
}

var errCut = errors.New("partitioned")

func (c *cuttableConn) Read(b []byte) (int, error) {
	if c.p.cut.Load() {
		return 0, errCut
	}
	return c.Conn.Read(b)
}

func (c *cuttableConn) Write(b []byte) (int, error) {
	if c.p.cut.Load() {
		return 0, errCut
	}
	return c.Conn.Write(b)
}

// set cuts (true) or heals (false); cutting closes every connection so
// that blocked reads return.
func (p *partition) set(cut bool) {
	p.cut.Store(cut)
	if !cut {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Conn.Close()
	}
	p.conns = nil
}

// A node cut off from the majority by the network (the process runs on)
// keeps enforcing what it applied, refuses first uses it cannot commit,
// and converges once the network heals; the majority goes on writing.
func TestClusterNetworkPartitionMinority(t *testing.T) {
	cutN3 := &partition{}
	c := newTestClusterWith(t, nil, func(n *Node) {
		if n.ID() == "n3" {
			n.wrapConn = cutN3.wrap
		}
	}, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.leader().Apply(ctx, banCmd("192.0.2.80/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every node to apply the ban", func() bool { return c.allBanned("192.0.2.80") })

	cutN3.set(true)
	n3 := c.nodes["n3"]
	// The majority side elects (if n3 led) and commits without n3.
	var majority *Node
	waitFor(t, 10*time.Second, "a leader on the majority side", func() bool {
		for _, id := range []string{"n1", "n2"} {
			if c.nodes[id].IsLeader() {
				majority = c.nodes[id]
				return true
			}
		}
		return false
	})
	if _, err := majority.Apply(ctx, banCmd("192.0.2.81/32")); err != nil {
		t.Fatalf("a write on the majority side: %v", err)
	}
	// n3 still enforces its state, and does not learn the new ban.
	if !n3.Banned(netip.MustParseAddr("192.0.2.80"), time.Now()) {
		t.Fatal("the cut-off node stopped enforcing a ban")
	}
	if n3.Banned(netip.MustParseAddr("192.0.2.81"), time.Now()) {
		t.Fatal("the cut-off node learned a write across the partition")
	}
	// A first use through n3 cannot commit: refused when its time is up.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	var id tofu.Identity
	id.Cert[0], id.SPKI[0] = 9, 9
	_, err := n3.PinStore().Claim(cctx, tofu.Pin{Key: tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/cut/"}, Identity: id})
	ccancel()
	if err == nil {
		t.Fatal("a claim through the cut-off node succeeded")
	}
	if _, ok := n3.PinStore().Lookup(tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/cut/"}); ok {
		t.Fatal("the cut-off node pinned a first use it could not commit")
	}

	cutN3.set(false)
	waitFor(t, 20*time.Second, "the healed node to converge", func() bool {
		return n3.Banned(netip.MustParseAddr("192.0.2.81"), time.Now()) && n3.Status().StateHash == majority.Status().StateHash
	})
}
