package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
)

// testTiming is LANTiming made quick for loopback, with enough slack for
// the race detector on a loaded two-core machine.
func testTiming() Timing {
	t := LANTiming()
	t.HeartbeatTimeout = 300 * time.Millisecond
	t.ElectionTimeout = 300 * time.Millisecond
	t.LeaderLeaseTimeout = 150 * time.Millisecond
	t.ApplyTimeout = 5 * time.Second
	return t
}

// tLogWriter sends log lines to t.Log, so a failing test shows the nodes'
// logs and a passing one stays quiet.
type tLogWriter struct {
	t  testing.TB
	mu *sync.Mutex
	on *bool
}

func (w tLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *w.on {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB, name string) *slog.Logger {
	mu, on := &sync.Mutex{}, true
	t.Cleanup(func() { mu.Lock(); on = false; mu.Unlock() })
	return slog.New(slog.NewTextHandler(tLogWriter{t, mu, &on}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// testCluster is n nodes of one cluster in this process, each with its own
// data dir and cluster port on loopback, over mutual TLS with certificates
// from pki.Init.
type testCluster struct {
	t          testing.TB
	dir        string
	pki        *pki.Layout
	peers      []Peer
	nodes      map[string]*Node
	cfgs       map[string]Config
	beforeOpen func(*Node) // when set, called with each node between New and Open

}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tlsFor(t testing.TB, files pki.Files) (server, client *tls.Config) {
	t.Helper()
	cred, err := pki.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	server, err = cred.ServerConfig(pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	return server, cred.ClientConfig("")
}

func newTestCluster(t testing.TB, ids ...string) *testCluster {
	t.Helper()
	return newTestClusterWith(t, nil, nil, ids...)
}

// newTestClusterWith is newTestCluster with tweak (when not nil) applied
// to each node's configuration and beforeOpen (when not nil) called with
// each node between New and Open, to set test hooks.
func newTestClusterWith(t testing.TB, tweak func(*Config), beforeOpen func(*Node), ids ...string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	layout, err := pki.Init(filepath.Join(dir, "certs"), pki.InitOptions{Nodes: append(ids, "spare")})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, dir: dir, pki: layout, nodes: map[string]*Node{}, cfgs: map[string]Config{}, beforeOpen: beforeOpen}
	for _, id := range ids {
		c.peers = append(c.peers, Peer{ID: id, Addr: freeAddr(t)})
	}
	for _, p := range c.peers {
		cfg := c.config(p.ID, p.Addr)
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs[p.ID] = cfg
	}
	for _, id := range ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	return c
}

func (c *testCluster) config(id, addr string) Config {
	server, client := tlsFor(c.t, c.pki.Node(id))
	return Config{
		ID: id, Dir: filepath.Join(c.dir, id), Listen: addr, Peers: c.peers, BootstrapExpect: len(c.peers),
		ServerTLS: server, ClientTLS: client, PeerName: pki.PeerNodeName,
		Timing: testTiming(), AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testLogger(c.t, id),
	}
}

func (c *testCluster) start(id string) *Node {
	c.t.Helper()
	n, err := New(c.cfgs[id])
	if err != nil {
		c.t.Fatal(err)
	}
	if c.beforeOpen != nil {
		c.beforeOpen(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Open(ctx); err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.nodes[id] = n
	return n
}

func (c *testCluster) stop(id string) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Logf("close %s: %v", id, err)
	}
	delete(c.nodes, id)
}

// leader waits for a leader all running nodes agree on.
func (c *testCluster) leader() *Node {
	c.t.Helper()
	var found *Node
	waitFor(c.t, 20*time.Second, "a leader every running node knows", func() bool {
		found = nil
		var want string
		for _, n := range c.nodes {
			id, _ := n.Leader()
			if id == "" || (want != "" && id != want) {
				return false
			}
			want = id
		}
		found = c.nodes[want]
		return found != nil
	})
	return found
}

func (c *testCluster) follower() *Node {
	l := c.leader()
	for _, n := range c.nodes {
		if n != l {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// waitFor polls cond until it holds or the timeout passes. Polling (not
// sleeping a fixed time) keeps the test as fast as the cluster.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func banCmd(p string) raftstore.Command {
	return raftstore.Command{Op: raftstore.OpBanAdd, Prefix: netip.MustParsePrefix(p), Duration: time.Hour, Reason: "test"}
}

func (c *testCluster) allBanned(addr string) bool {
	a := netip.MustParseAddr(addr)
	for _, n := range c.nodes {
		if !n.Banned(a, time.Now()) {
			return false
		}
	}
	return true
}

func TestClusterBanOnFollowerReachesEveryNode(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := f.Apply(ctx, banCmd("192.0.2.7/32"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Index == 0 {
		t.Fatalf("result %+v", res)
	}
	// Apply returns once the writing node has applied it: read your write.
	if !f.Banned(netip.MustParseAddr("192.0.2.7"), time.Now()) {
		t.Fatal("the follower that wrote the ban does not enforce it on return")
	}
	waitFor(t, 5*time.Second, "every node to enforce the ban", func() bool { return c.allBanned("192.0.2.7") })
	waitFor(t, 5*time.Second, "equal state hashes", func() bool {
		var h string
		for _, n := range c.nodes {
			s := n.Status()
			if h != "" && s.StateHash != h {
				return false
			}
			h = s.StateHash
		}
		return true
	})
}

func TestClusterRetryWithSameKeyAppliesOnce(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := banCmd("192.0.2.8/32")
	cmd.Key = "retry-key"
	first, err := f.Apply(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.leader().Apply(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if second.Duplicate != first.Index || second.Changed {
		t.Fatalf("retry %+v, want a duplicate of %d", second, first.Index)
	}
	c.leader().Read(func(st *raftstore.State) {
		if b, _ := st.Bans().Lookup(netip.MustParsePrefix("192.0.2.8/32")); b.Strikes != 1 {
			t.Fatalf("strikes %d: the retry applied again", b.Strikes)
		}
	})
}

func TestClusterRefusedCommandCommitsNothing(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A new leader appends a no-op of its own: let it commit first.
	if _, err := c.leader().ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	before := c.leader().Status().LastIndex
	_, err := f.Apply(ctx, raftstore.Command{Op: raftstore.OpBanAdd, Prefix: netip.MustParsePrefix("0.0.0.0/0"), Duration: time.Hour, Reason: "x"})
	if !errors.Is(err, raftstore.ErrRefused) || !strings.Contains(err.Error(), "too broad") {
		t.Fatalf("err %v, want a refusal naming the broad prefix", err)
	}
	if after := c.leader().Status().LastIndex; after != before {
		t.Fatalf("a refused command moved the log from %d to %d", before, after)
	}
}

func TestClusterLeaderKilledAcknowledgedWritesSurvive(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := c.leader()
	var acked []string
	for i := range 20 {
		p := fmt.Sprintf("198.51.100.%d/32", i)
		if _, err := old.Apply(ctx, banCmd(p)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, p)
	}
	oldID := old.ID()
	c.stop(oldID)
	nl := c.leader()
	if nl.ID() == oldID {
		t.Fatal("the stopped node is still the leader")
	}
	if _, err := nl.Apply(ctx, banCmd("203.0.113.1/32")); err != nil {
		t.Fatalf("write after the new election: %v", err)
	}
	for _, p := range acked {
		if !nl.Banned(netip.MustParsePrefix(p).Addr(), time.Now()) {
			t.Fatalf("acknowledged ban %s lost", p)
		}
	}
	// The old leader comes back with its log and catches up.
	back := c.start(oldID)
	waitFor(t, 10*time.Second, "the old leader to catch up", func() bool {
		return back.Banned(netip.MustParseAddr("203.0.113.1"), time.Now())
	})
}

func TestClusterSnapshotInstalledOnLaggingNode(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	for id, cfg := range c.cfgs {
		cfg.Timing.SnapshotThreshold = 16
		cfg.Timing.TrailingLogs = 4
		cfg.Timing.SnapshotInterval = 50 * time.Millisecond
		c.cfgs[id] = cfg
	}
	// Restart every node with the snapshot-happy timing.
	for _, id := range []string{"n1", "n2", "n3"} {
		c.stop(id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		c.start(id)
	}
	lag := c.follower().ID()
	c.stop(lag)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := c.leader()
	for i := range 120 {
		if _, err := l.Apply(ctx, banCmd(fmt.Sprintf("10.9.%d.%d/32", i/250, i%250))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the leader to snapshot and compact its log", func() bool {
		first, err := l.store.FirstIndex()
		return err == nil && first > 10
	})
	back := c.start(lag)
	waitFor(t, 15*time.Second, "the lagging node to get the state by snapshot", func() bool {
		return back.Banned(netip.MustParseAddr("10.9.0.119"), time.Now()) && back.Status().StateHash == l.Status().StateHash
	})
}

func TestClusterRacingClaimsHaveOneWinner(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.leader()
	key := tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/claim/"}
	var wg sync.WaitGroup
	results := map[string]tofu.Pin{}
	var mu sync.Mutex
	for i, id := range []string{"n1", "n2", "n3"} {
		n := c.nodes[id]
		var ident tofu.Identity
		ident.Cert[0], ident.SPKI[0] = byte(i+1), byte(i+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p, err := n.PinStore().Claim(ctx, tofu.Pin{Key: key, Identity: ident, Created: time.Now().UTC()})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			results[id] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	var winner tofu.Identity
	for id, p := range results {
		if winner.IsZero() {
			winner = p.Identity
		}
		if p.Identity != winner {
			t.Fatalf("%s was told %x won, another node %x", id, p.Identity.Cert[0], winner.Cert[0])
		}
	}
	waitFor(t, 5*time.Second, "every node to hold the winner's pin", func() bool {
		for _, n := range c.nodes {
			p, ok := n.PinStore().Lookup(key)
			if !ok || p.Identity != winner {
				return false
			}
		}
		return true
	})
}

func TestClusterRefusesNodeFromAnotherAuthority(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.leader()
	other, err := pki.Init(filepath.Join(t.TempDir(), "other"), pki.InitOptions{Nodes: []string{"n4"}})
	if err != nil {
		t.Fatal(err)
	}
	server, client := tlsFor(t, other.Node("n4"))
	cfg := Config{ID: "n4", Dir: filepath.Join(t.TempDir(), "n4"), Listen: freeAddr(t), Join: []string{c.peers[0].Addr},
		ServerTLS: server, ClientTLS: client, PeerName: pki.PeerNodeName, Timing: testTiming(),
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testLogger(t, "n4")}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// It cannot forward a write either: the handshake fails.
	_, err = n.fwd.call(ctx, c.peers[0].Addr, fwdRequest{Apply: &raftstore.Command{Op: raftstore.OpBanAdd}})
	if !errors.Is(err, errForwardUnavailable) {
		t.Fatalf("a foreign node's forwarded write: %v, want a refused handshake", err)
	}
	for _, m := range c.nodes {
		for _, p := range m.Status().Peers {
			if p == "n4" {
				t.Fatal("a node from another authority joined")
			}
		}
	}
}

func TestClusterJoinAndLeave(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	server, client := tlsFor(t, c.pki.Node("spare"))
	cfg := Config{ID: "spare", Dir: filepath.Join(c.dir, "spare"), Listen: freeAddr(t), Join: []string{c.peers[1].Addr, c.peers[0].Addr},
		ServerTLS: server, ClientTLS: client, PeerName: pki.PeerNodeName, Timing: testTiming(),
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testLogger(t, "spare")}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.Apply(ctx, banCmd("192.0.2.99/32")); err != nil {
		t.Fatal(err)
	}
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the joined node to catch up", func() bool {
		return n.Banned(netip.MustParseAddr("192.0.2.99"), time.Now())
	})
	if err := c.follower().RemoveServer(ctx, "spare"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the leader to drop the node", func() bool {
		for _, p := range c.leader().Status().Peers {
			if p == "spare" {
				return false
			}
		}
		return true
	})
}

func TestClusterMinorityKeepsEnforcingAndRefusesClaims(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.leader().Apply(ctx, banCmd("192.0.2.50/32")); err != nil {
		t.Fatal(err)
	}
	key := tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/claim/"}
	var owner tofu.Identity
	owner.Cert[0], owner.SPKI[0] = 1, 1
	if _, err := c.leader().PinStore().Claim(ctx, tofu.Pin{Key: key, Identity: owner}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every node to apply the ban and the pin", func() bool {
		for _, n := range c.nodes {
			if _, ok := n.PinStore().Lookup(key); !ok || !n.Banned(netip.MustParseAddr("192.0.2.50"), time.Now()) {
				return false
			}
		}
		return true
	})
	// Cut n3 off from the majority: the other two go away.
	c.stop("n1")
	c.stop("n2")
	alone := c.nodes["n3"]
	if !alone.Banned(netip.MustParseAddr("192.0.2.50"), time.Now()) {
		t.Fatal("a node cut off from the majority stopped enforcing a ban")
	}
	if p, ok := alone.PinStore().Lookup(key); !ok || p.Identity != owner {
		t.Fatal("a node cut off from the majority lost a pin")
	}
	// A new first use cannot commit: it fails when its context ends, it
	// does not guess.
	cctx, ccancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	var other tofu.Identity
	other.Cert[0], other.SPKI[0] = 2, 2
	_, err := alone.PinStore().Claim(cctx, tofu.Pin{Key: tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/new/"}, Identity: other})
	ccancel()
	if err == nil || !errors.Is(err, ErrNoLeader) {
		t.Fatalf("a claim on a minority node: %v, want it refused with ErrNoLeader", err)
	}
	if _, ok := alone.PinStore().Lookup(tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/new/"}); ok {
		t.Fatal("a minority node pinned a first use it could not commit")
	}
	// Heal: the others come back, a write goes through, n3 converges.
	c.start("n1")
	c.start("n2")
	if _, err := c.nodes["n1"].Apply(ctx, banCmd("192.0.2.51/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the cut-off node to converge", func() bool {
		return alone.Banned(netip.MustParseAddr("192.0.2.51"), time.Now()) && alone.Status().StateHash == c.nodes["n1"].Status().StateHash
	})
}

// An entry of an unknown schema version stops every node that applies
// it, with an error naming the version and the index: never a skip.
func TestClusterUnknownSchemaVersionIsFatal(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	fatal := make(chan error, 3)
	for id, cfg := range c.cfgs {
		cfg.Fatal = func(err error) { fatal <- err }
		c.cfgs[id] = cfg
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		c.stop(id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		c.start(id)
	}
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Apply(ctx, banCmd("192.0.2.60/32")); err != nil {
		t.Fatal(err)
	}
	before := l.Status().StateHash
	f := l.raft.Apply([]byte(`{"v":2,"type":"ban.added","time":"2026-11-30T12:00:00Z","data":{}}`), 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case err := <-fatal:
			var uv *raftstore.UnknownVersionError
			if !errors.As(err, &uv) || uv.Version != 2 || uv.Index != f.Index() {
				t.Fatalf("fatal error %v, want version 2 at index %d", err, f.Index())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not every node stopped on the unknown version")
		}
	}
	// Nothing after it is applied, and writes are refused.
	if _, err := l.Apply(ctx, banCmd("192.0.2.61/32")); !errors.Is(err, ErrFailed) {
		t.Fatalf("a write after the fatal entry: %v, want ErrFailed", err)
	}
	if l.Banned(netip.MustParseAddr("192.0.2.61"), time.Now()) {
		t.Fatal("an entry after the fatal one was applied")
	}
	if s := l.Status(); s.Failed == "" || s.StateHash != before {
		t.Fatalf("status after the fatal entry: failed %q, hash changed %v", s.Failed, s.StateHash != before)
	}
}

// A node restarted while it cannot reach the majority enforces what it
// enforced before it stopped (its snapshot and log on disk), not nothing.
func TestClusterRestartedAloneEnforcesItsLastState(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.leader().Apply(ctx, banCmd("192.0.2.70/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every node to apply the ban", func() bool { return c.allBanned("192.0.2.70") })
	for _, id := range []string{"n1", "n2", "n3"} {
		c.stop(id)
	}
	n := c.start("n3") // alone: no leader, nothing committed can be applied
	if id, _ := n.Leader(); id != "" {
		t.Fatalf("a lone node of three has a leader %s", id)
	}
	if !n.Banned(netip.MustParseAddr("192.0.2.70"), time.Now()) {
		t.Fatal("a node restarted without a majority does not enforce its last state")
	}
}
