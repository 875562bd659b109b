package admin

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// openStateAdmin serves every state endpoint (bans, rules, trust, cluster)
// of a real single-node cluster (Raft over its in-memory transport).
func openStateAdmin(t *testing.T) (string, *cluster.Node) {
	t.Helper()
	n, err := cluster.New(cluster.Config{ID: "n1", Dir: t.TempDir(), BootstrapExpect: 1,
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return serveState(t, n), n
}

// serveState opens an admin socket with every state endpoint of n.
func serveState(t *testing.T, n *cluster.Node) string {
	t.Helper()
	path := filepath.Join(shortDir(t), "a.sock")
	a := NewAdmin(path, nil, testlog.New(t))
	a.HandleBans(n)
	a.HandleRules(n)
	a.HandleTrust(n)
	a.HandleCluster(n)
	a.HandleSnapshots(n)
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return path
}

// refusal is a request the admin API must refuse: its answer's status
// code and a part of its error.
type refusal struct {
	name, method, target, body string
	code                       int
	want                       string
}

// checkRefusals sends each request over the socket at sock and checks its
// status and error, and that the error does not echo field, a long field
// of the request.
func checkRefusals(t *testing.T, sock string, tests []refusal, field string) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, sb := send(t, sock, tt.method, tt.target, tt.body)
			if code != tt.code || !strings.Contains(sb.Error, tt.want) {
				t.Fatalf("%s %s %.80s = %d %q, want %d and %q", tt.method, tt.target, tt.body, code, sb.Error, tt.code, tt.want)
			}
			if strings.Contains(sb.Error, field) {
				t.Fatalf("the error echoes the whole field: %.200q", sb.Error)
			}
		})
	}
}

// unchanged fails the test if a command was committed since before, the
// node's status when the refused requests began: the state's applied
// index moves with every command entry (Raft's own last index also moves
// with no-ops and barriers, so it says nothing here).
func unchanged(t *testing.T, n *cluster.Node, before cluster.Status) {
	t.Helper()
	if got := n.Status(); got.AppliedIndex != before.AppliedIndex || got.StateHash != before.StateHash {
		t.Fatalf("refused requests committed commands: applied index %d, was %d", got.AppliedIndex, before.AppliedIndex)
	}
}

func TestRuleAPI(t *testing.T) {
	sock, n := openStateAdmin(t)
	ctx := testCtx(t)
	if list, err := ListRules(ctx, sock, "", false); err != nil || len(list) != 0 {
		t.Fatalf("ListRules on an empty node = %v, %v", list, err)
	}
	c, err := AddRule(ctx, sock, RuleRequest{List: "deny", Prefix: "192.0.2.77/24"})
	if err != nil {
		t.Fatal(err)
	}
	if c.List != "deny" || c.Prefix != "192.0.2.0/24" || !c.Changed || c.Index == 0 {
		t.Fatalf("AddRule = %+v", c)
	}
	if again, err := AddRule(ctx, sock, RuleRequest{List: "deny", Prefix: "192.0.2.0/24"}); err != nil || again.Changed {
		t.Fatalf("adding it again = %+v, %v, want unchanged", again, err)
	}
	for _, req := range []RuleRequest{
		{List: "allow", Prefix: "::ffff:198.51.100.0/120"},
		{List: "allow", Prefix: "0.0.0.0/0"},                 // an allow rule may be as broad as asked
		{List: "deny", Prefix: "2001:db8::/16", Force: true}, // a broad deny rule, forced
	} {
		if _, err := AddRule(ctx, sock, req); err != nil {
			t.Fatalf("AddRule(%+v): %v", req, err)
		}
	}
	want := []RuleEntry{{"allow", "0.0.0.0/0"}, {"allow", "198.51.100.0/24"}, {"deny", "192.0.2.0/24"}, {"deny", "2001::/16"}}
	if list, err := ListRules(ctx, sock, "", true); err != nil || !slices.Equal(list, want) {
		t.Fatalf("ListRules consistent = %v, %v, want %v", list, err, want)
	}
	if list, err := ListRules(ctx, sock, "deny", false); err != nil || !slices.Equal(list, want[2:]) {
		t.Fatalf("ListRules deny = %v, %v", list, err)
	}
	if deny := n.RuleSet().Deny(); !slices.Contains(deny, netip.MustParsePrefix("192.0.2.0/24")) {
		t.Fatalf("the node's view lacks the deny rule: %v", deny)
	}

	if err := RemoveRule(ctx, sock, "deny", "192.0.2.0/24"); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(n.RuleSet().Deny(), netip.MustParsePrefix("192.0.2.0/24")) {
		t.Fatal("a removed rule is still in the node's view")
	}
	code, sb := send(t, sock, http.MethodDelete, "/rules?list=deny&prefix=192.0.2.0/24", "")
	if code != http.StatusNotFound || sb.Error != "no deny rule for 192.0.2.0/24" {
		t.Fatalf("removing it again = %d %+v, want 404", code, sb)
	}
	// The rule is on another list: allow's 0.0.0.0/0 is not deny's.
	if err := RemoveRule(ctx, sock, "deny", "0.0.0.0/0"); err == nil || !strings.Contains(err.Error(), "no deny rule for 0.0.0.0/0") {
		t.Fatalf("removing a rule from the wrong list = %v", err)
	}
}

// Bad input is refused with 400 (413 for a huge body) and a reason, and
// nothing is committed.
func TestRuleAPIRejectsBadInput(t *testing.T) {
	sock, n := openStateAdmin(t)
	before := n.Status()
	long := strings.Repeat("1", 5000)
	tests := []refusal{
		{"bad CIDR", "POST", "/rules", `{"list":"deny","prefix":"192.0.2.0/33"}`, 400, `prefix: invalid CIDR "192.0.2.0/33": prefix length "33" is not 0..32`},
		{"host name", "POST", "/rules", `{"list":"deny","prefix":"example.org"}`, 400, "prefix: invalid CIDR"},
		{"no prefix", "POST", "/rules", `{"list":"deny"}`, 400, "prefix: invalid CIDR"},
		{"long prefix", "POST", "/rules", `{"list":"deny","prefix":"` + long[:100] + `"}`, 400, "prefix: 100 bytes, too long for a CIDR"},
		{"unknown list", "POST", "/rules", `{"list":"block","prefix":"192.0.2.0/24"}`, 400, `list: "block" is neither allow nor deny`},
		{"no list", "POST", "/rules", `{"prefix":"192.0.2.0/24"}`, 400, `list: "" is neither allow nor deny`},
		{"deny everything", "POST", "/rules", `{"list":"deny","prefix":"0.0.0.0/0"}`, 400, `prefix: too broad: 0.0.0.0/0 is wider than /16 and would shut out every client in it, perhaps you too (send "force": true to deny it anyway)`},
		{"deny a v6 /31", "POST", "/rules", `{"list":"deny","prefix":"2001:db8::/31"}`, 400, "too broad"},
		{"unknown field", "POST", "/rules", `{"list":"deny","prefix":"192.0.2.0/24","forever":true}`, 400, `body: json: unknown field "forever"`},
		{"not JSON", "POST", "/rules", `list=deny`, 400, "body: "},
		{"huge body", "POST", "/rules", `{"list":"deny","prefix":"` + long + `"}`, 413, "body: larger than 4096 bytes"},
		{"remove: unknown list", "DELETE", "/rules?list=maybe&prefix=192.0.2.0/24", "", 400, `list: "maybe" is neither allow nor deny`},
		{"remove: bad prefix", "DELETE", "/rules?list=deny&prefix=nonsense", "", 400, "prefix: invalid CIDR"},
		{"list: unknown list", "GET", "/rules?list=maybe", "", 400, "list:"},
		{"PUT", "PUT", "/rules", `{}`, 405, "PUT is not allowed"},
	}
	checkRefusals(t, sock, tests, long[:100])
	unchanged(t, n, before)
	if rules := n.Rules(); len(rules) != 0 {
		t.Fatalf("refused requests left rules: %v", rules)
	}
}
