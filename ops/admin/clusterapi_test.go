package admin

import (
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

func TestClusterStatusAPI(t *testing.T) {
	sock, n := openStateAdmin(t)
	ctx := testCtx(t)
	if _, err := AddRule(ctx, sock, RuleRequest{List: "deny", Prefix: "192.0.2.0/24"}); err != nil {
		t.Fatal(err)
	}
	st, err := ClusterStatus(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "n1" || st.State != "leader" || st.Leader != "n1" || st.Term == 0 || st.AppliedIndex == 0 ||
		!slices.Equal(st.Peers, []string{"n1"}) || st.Rules != 1 || st.StateHash != n.Status().StateHash || len(st.StateHash) != 64 {
		t.Fatalf("ClusterStatus = %+v", st)
	}
	if code, sb := send(t, sock, http.MethodPost, "/cluster/status", "{}"); code != http.StatusMethodNotAllowed || sb.Status != "method_not_allowed" {
		t.Fatalf("POST /cluster/status = %d %+v", code, sb)
	}
}

// Bad input to join and leave is refused with a reason, and the
// membership does not change.
func TestClusterAPIRejectsBadInput(t *testing.T) {
	sock, n := openStateAdmin(t)
	before := n.Status()
	long := strings.Repeat("n", 5000)
	tests := []struct {
		name, target, body string
		code               int
		want               string
	}{
		{"join: id not a label", "/cluster/join", `{"id":"N 4","addr":"192.0.2.4:7000"}`, 400, `id: name "N 4": not a valid name`},
		{"join: no id", "/cluster/join", `{"addr":"192.0.2.4:7000"}`, 400, "id: "},
		{"join: long id", "/cluster/join", `{"id":"` + long[:300] + `","addr":"192.0.2.4:7000"}`, 400, "id: 300 bytes"},
		{"join: no port", "/cluster/join", `{"id":"n4","addr":"192.0.2.4"}`, 400, `addr: "192.0.2.4" is not host:port`},
		{"join: bad port", "/cluster/join", `{"id":"n4","addr":"n4:http"}`, 400, "is not host:port"},
		{"join: no host", "/cluster/join", `{"id":"n4","addr":":7000"}`, 400, "is not host:port"},
		{"join: unspecified", "/cluster/join", `{"id":"n4","addr":"0.0.0.0:7000"}`, 400, "is not an address other nodes can reach"},
		{"join: unknown field", "/cluster/join", `{"id":"n4","addr":"n4:7000","voter":true}`, 400, `unknown field "voter"`},
		{"join: huge body", "/cluster/join", `{"id":"` + long + `"}`, 413, "body: larger than 4096 bytes"},
		{"leave: no id", "/cluster/leave", `{}`, 400, "id: missing"},
		{"leave: not a member", "/cluster/leave", `{"id":"n9"}`, 404, `no member "n9" (members: [n1])`},
		{"leave: the only member", "/cluster/leave", `{"id":"n1"}`, 400, "n1 is the cluster's only member"},
		{"leave: not JSON", "/cluster/leave", `n1`, 400, "body: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, sb := send(t, sock, http.MethodPost, tt.target, tt.body)
			if code != tt.code || !strings.Contains(sb.Error, tt.want) {
				t.Fatalf("POST %s %.80s = %d %q, want %d and %q", tt.target, tt.body, code, sb.Error, tt.code, tt.want)
			}
			if strings.Contains(sb.Error, long[:150]) {
				t.Fatalf("the error echoes the whole field: %.200q", sb.Error)
			}
		})
	}
	if code, _ := send(t, sock, http.MethodGet, "/cluster/join", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /cluster/join = %d, want 405", code)
	}
	unchanged(t, n, before)
	if after := n.Status(); !slices.Equal(after.Peers, []string{"n1"}) {
		t.Fatalf("refused requests changed the membership: %+v", after)
	}
}

// tlsNode opens a node of a cluster on a loopback cluster port, with its
// certificate from layout; join lists addresses it asks for admission.
func tlsNode(t *testing.T, layout *pki.Layout, id string, expect int, join []string) *cluster.Node {
	t.Helper()
	cred, err := pki.Load(layout.Node(id))
	if err != nil {
		t.Fatal(err)
	}
	server, err := cred.ServerConfig(pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	timing := cluster.LANTiming()
	timing.ApplyTimeout = 5 * time.Second
	n, err := cluster.New(cluster.Config{
		ID: id, Dir: filepath.Join(t.TempDir(), id), Listen: "127.0.0.1:0", BootstrapExpect: expect, Join: join,
		ServerTLS: server, ClientTLS: cred.ClientConfig(""), PeerName: pki.PeerNodeName, Timing: timing,
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testlog.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitUntil polls cond until it holds, failing the test when its context
// ends first.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// An operator admits a node through any member's admin socket, writes
// and reads through the new follower (which forwards to the leader), and
// removes it again.
func TestClusterAPIJoinForwardLeave(t *testing.T) {
	layout, err := pki.Init(filepath.Join(t.TempDir(), "certs"), pki.InitOptions{Nodes: []string{"n1", "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	n1 := tlsNode(t, layout, "n1", 1, nil)
	if err := n1.WaitLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// n2's configured join address is wrong: it waits to be admitted.
	n2 := tlsNode(t, layout, "n2", 0, []string{deadAddr(t)})
	sock1, sock2 := serveState(t, n1), serveState(t, n2)
	ctx := testCtx(t)

	if err := JoinCluster(ctx, sock1, JoinRequest{ID: "n2", Addr: n2.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "n2 to follow n1 and know both members", func() bool {
		id, _ := n2.Leader()
		return id == "n1" && slices.Equal(n2.Status().Peers, []string{"n1", "n2"})
	})
	st, err := ClusterStatus(ctx, sock2)
	if err != nil || st.NodeID != "n2" || st.State != "follower" || st.Leader != "n1" || !slices.Equal(st.Peers, []string{"n1", "n2"}) {
		t.Fatalf("status on n2 = %+v, %v", st, err)
	}

	// Writes through the follower are forwarded to the leader.
	if _, err := AddRule(ctx, sock2, RuleRequest{List: "deny", Prefix: "203.0.113.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ApproveTrust(ctx, sock2, ApproveRequest{Kind: "upstream", Subject: "backend:1965", Cert: certA}); err != nil {
		t.Fatal(err)
	}
	if _, err := AddBan(ctx, sock1, BanRequest{Prefix: "198.51.100.7", Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	// A consistent read on the follower sees the write just made on the leader.
	bans, err := ListBans(ctx, sock2, true)
	if err != nil || len(bans) != 1 || bans[0].Prefix != "198.51.100.7/32" {
		t.Fatalf("consistent ListBans on n2 = %+v, %v", bans, err)
	}
	if rules, err := ListRules(ctx, sock1, "", true); err != nil || len(rules) != 1 {
		t.Fatalf("consistent ListRules on n1 = %+v, %v", rules, err)
	}
	if pins, err := ListPins(ctx, sock1, "", true); err != nil || len(pins) != 1 || pins[0].Cert != certA || pins[0].SPKI != "" {
		t.Fatalf("consistent ListPins on n1 = %+v, %v", pins, err)
	}
	if !n1.Banned(netip.MustParseAddr("198.51.100.7"), time.Now()) || len(n1.RuleSet().Deny()) != 1 {
		t.Fatal("the leader lacks the writes")
	}

	// The follower's socket removes it, through the leader.
	if err := LeaveCluster(ctx, sock2, "n2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "n1 to drop n2", func() bool { return slices.Equal(n1.Status().Peers, []string{"n1"}) })
	if err := LeaveCluster(ctx, sock1, "n2"); err == nil || !strings.Contains(err.Error(), `no member "n2"`) {
		t.Fatalf("removing it again = %v, want not a member", err)
	}
}
