package cluster

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/ratelimit"
)

func hardResult(violations uint32) ratelimit.Result {
	return ratelimit.Result{Verdict: ratelimit.Hard, Violations: violations, RetryAfter: time.Second}
}

// A flood from one client, reported on every node at once, commits one
// ban, not one per refused connection; the node that saw the abuse
// enforces it before it commits.
func TestClusterAutoBanFloodCommitsOneBan(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	before := l.Status().LastIndex
	addr := netip.MustParseAddr("203.0.113.9")
	threshold := raftstore.DefaultAutoBanPolicy().Threshold
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint32(1000) {
				n.ReportAbuse(addr, hardResult(threshold+i))
			}
			if !n.Banned(addr, time.Now()) {
				t.Errorf("%s does not enforce the auto-ban it just proposed", n.ID())
			}
		}()
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "the ban to commit and no auto-ban to be pending", func() bool {
		for _, n := range c.nodes {
			if !n.BanSet().Banned(addr, time.Now()) || n.pending.view.Load() != nil {
				return false
			}
		}
		return true
	})
	var ban raftstore.Ban
	l.Read(func(st *raftstore.State) { ban, _ = st.Bans().Lookup(netip.MustParsePrefix("203.0.113.9/32")) })
	if ban.Strikes != 1 || ban.Source != raftstore.SourceAuto {
		t.Fatalf("ban %+v, want one auto-ban (1 strike)", ban)
	}
	// At most one entry per node proposed it (and the fold kept the
	// first), plus the barriers that nudge followers: far from 3,000.
	if grew := l.Status().LastIndex - before; grew > 12 {
		t.Fatalf("the log grew by %d entries for one flood", grew)
	}
}

// Below the threshold, or for a soft verdict, nothing is banned.
func TestClusterAutoBanThreshold(t *testing.T) {
	c := newTestCluster(t, "n1")
	n := c.leader()
	addr := netip.MustParseAddr("203.0.113.10")
	th := raftstore.DefaultAutoBanPolicy().Threshold
	n.ReportAbuse(addr, hardResult(th-1))
	n.ReportAbuse(addr, ratelimit.Result{Verdict: ratelimit.Soft, Violations: th + 5})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Banned(addr, time.Now()) {
		t.Fatal("banned below the threshold or on a soft verdict")
	}
}

// Pending auto-bans expire on the node's clock (Config.Now), not the wall
// clock: under a clock behind the wall clock, a pending ban is neither
// proposed twice nor dropped when another is added.
func TestPendingBansUseTheNodeClock(t *testing.T) {
	var p pendingBans
	now := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParsePrefix("203.0.113.0/24")
	b := netip.MustParsePrefix("198.51.100.0/24")
	if !p.add(a, now.Add(time.Hour), now) {
		t.Fatal("first add of a reported pending already")
	}
	if p.add(a, now.Add(time.Hour), now) {
		t.Fatal("a pending ban was added again")
	}
	if !p.add(b, now.Add(time.Hour), now) {
		t.Fatal("first add of b reported pending already")
	}
	if !p.banned(a.Addr(), now) || !p.banned(b.Addr(), now) {
		t.Fatal("a pending ban was dropped before its expiry on the node's clock")
	}
	p.remove(b, now)
	if !p.banned(a.Addr(), now) || p.banned(b.Addr(), now) {
		t.Fatal("remove took out the wrong ban")
	}
}
