package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// openCLINode runs a real single-node cluster (Raft over its in-memory
// transport) behind an admin socket with every state endpoint, as a node
// serves them, and returns the socket's path.
func openCLINode(t *testing.T) (string, *cluster.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := cluster.New(cluster.Config{ID: "n1", Dir: t.TempDir(), BootstrapExpect: 1,
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cli") // short: a socket path is at most 104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "a.sock")
	a := admin.NewAdmin(sock, nil, testlog.New(t))
	a.HandleBans(n)
	a.HandleRules(n)
	a.HandleTrust(n)
	a.HandleCluster(n)
	a.HandleSnapshots(n)
	if err := a.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return sock, n
}

// cli runs the command line in-process against sock and fails the test on
// an error.
func cli(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, err := execute(t, append(args, "--socket", sock)...)
	if err != nil {
		t.Fatalf("chimalli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cliErr runs the command line against sock and returns its error, failing
// the test when there is none or it lacks want.
func cliErr(t *testing.T, sock, want string, args ...string) {
	t.Helper()
	out, err := execute(t, append(args, "--socket", sock)...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("chimalli %s = %v (%q), want an error containing %q", strings.Join(args, " "), err, out, want)
	}
}

func TestRuleCommands(t *testing.T) {
	sock, n := openCLINode(t)
	if out := cli(t, sock, "rule", "ls"); !strings.Contains(out, "no access rules") {
		t.Fatalf("rule ls on an empty node:\n%s", out)
	}
	if out := cli(t, sock, "rule", "deny", "add", "192.0.2.9/24"); out != "added deny 192.0.2.0/24\n" {
		t.Fatalf("rule deny add: %q", out)
	}
	if out := cli(t, sock, "rule", "deny", "add", "192.0.2.0/24"); out != "deny 192.0.2.0/24 was already there\n" {
		t.Fatalf("rule deny add again: %q", out)
	}
	cli(t, sock, "rule", "allow", "add", "0.0.0.0/0") // allow rules may be broad
	cli(t, sock, "rule", "deny", "add", "::/0", "--force")

	before := n.Status()
	cliErr(t, sock, "prefix: too broad: 10.0.0.0/8 is wider than /16 and would shut out every client in it, perhaps you too (pass --force to deny it anyway)", "rule", "deny", "add", "10.0.0.0/8")
	cliErr(t, sock, `prefix: invalid CIDR "192.0.2.0/40"`, "rule", "deny", "add", "192.0.2.0/40")
	cliErr(t, sock, `prefix: invalid CIDR "example.org"`, "rule", "allow", "rm", "example.org")
	cliErr(t, sock, "unknown flag: --force", "rule", "allow", "add", "10.0.0.0/8", "--force")
	cliErr(t, sock, "accepts 1 arg(s), received 0", "rule", "deny", "add")
	if after := n.Status(); after.AppliedIndex != before.AppliedIndex || after.StateHash != before.StateHash {
		t.Fatalf("refused commands changed the state: applied %d, was %d", after.AppliedIndex, before.AppliedIndex)
	}

	var allow []admin.RuleEntry
	if err := json.Unmarshal([]byte(cli(t, sock, "rule", "allow", "ls", "--json")), &allow); err != nil || len(allow) != 1 || allow[0] != (admin.RuleEntry{List: "allow", Prefix: "0.0.0.0/0"}) {
		t.Fatalf("rule allow ls --json = %+v, %v", allow, err)
	}
	out := cli(t, sock, "rule", "deny", "ls", "--consistent")
	if !strings.Contains(out, "LIST") || !strings.Contains(out, "deny  192.0.2.0/24") || !strings.Contains(out, "::/0") || strings.Contains(out, "allow") {
		t.Fatalf("rule deny ls --consistent:\n%s", out)
	}
	if out := cli(t, sock, "rule", "ls"); strings.Count(out, "\n") != 4 {
		t.Fatalf("rule ls: want a header and three rules:\n%s", out)
	}
	if out := cli(t, sock, "rule", "deny", "rm", "192.0.2.0/24"); out != "removed deny 192.0.2.0/24\n" {
		t.Fatalf("rule deny rm: %q", out)
	}
	cliErr(t, sock, "no deny rule for 192.0.2.0/24", "rule", "deny", "rm", "192.0.2.0/24")
}

func TestTrustCommands(t *testing.T) {
	sock, n := openCLINode(t)
	const (
		cert = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		spki = "spki-sha256:2222222222222222222222222222222222222222222222222222222222222222"
	)
	if out := cli(t, sock, "trust", "ls"); !strings.Contains(out, "no pins") {
		t.Fatalf("trust ls on an empty node:\n%s", out)
	}
	out := cli(t, sock, "trust", "approve", "--kind", "claim", "--subject", "example.org/app/", spki)
	if !strings.Contains(out, "claim  example.org/app/  -     "+spki) {
		t.Fatalf("trust approve by public key:\n%s", out)
	}
	if out := cli(t, sock, "trust", "approve", "--kind", "claim", "--subject", "example.org/app/", spki); !strings.HasPrefix(out, "already pinned so:") {
		t.Fatalf("trust approve again:\n%s", out)
	}
	cli(t, sock, "trust", "approve", "--kind", "upstream", "--subject", "backend:1965", spki, strings.ToUpper(cert))

	before := n.Status()
	for _, tt := range []struct {
		want string
		args []string
	}{
		{"fingerprint: bad fingerprint", []string{"trust", "approve", "--kind", "claim", "--subject", "example.org/app/", "sha256:abcd"}},
		{"two public-key fingerprints", []string{"trust", "approve", "--kind", "claim", "--subject", "example.org/app/", spki, spki}},
		{`kind: "client" is neither claim nor upstream`, []string{"trust", "approve", "--kind", "client", "--subject", "example.org/app/", cert}},
		{"is not host:port", []string{"trust", "approve", "--kind", "upstream", "--subject", "backend", cert}},
		{`required flag(s) "subject" not set`, []string{"trust", "approve", "--kind", "claim", cert}},
		{"accepts between 1 and 2 arg(s), received 0", []string{"trust", "approve", "--kind", "claim", "--subject", "example.org/app/"}},
		{`kind: "server" is neither claim nor upstream`, []string{"trust", "revoke", "--kind", "server", "--subject", "backend:1965"}},
	} {
		cliErr(t, sock, tt.want, tt.args...)
	}
	if after := n.Status(); after.AppliedIndex != before.AppliedIndex || after.StateHash != before.StateHash {
		t.Fatalf("refused commands changed the state: applied %d, was %d", after.AppliedIndex, before.AppliedIndex)
	}
	// Revoking what is not pinned commits (a no-op) and says so.
	cliErr(t, sock, `no claim pin for "example.org/other/"`, "trust", "revoke", "--kind", "claim", "--subject", "example.org/other/")

	var pins []admin.PinEntry
	if err := json.Unmarshal([]byte(cli(t, sock, "trust", "ls", "--json", "--consistent", "--kind", "upstream")), &pins); err != nil ||
		len(pins) != 1 || pins[0].Subject != "backend:1965" || pins[0].Cert != cert || pins[0].SPKI != spki {
		t.Fatalf("trust ls --json --kind upstream = %+v, %v", pins, err)
	}
	if out := cli(t, sock, "trust", "revoke", "--kind", "claim", "--subject", "example.org/app/"); out != "revoked claim example.org/app/\n" {
		t.Fatalf("trust revoke: %q", out)
	}
	if out := cli(t, sock, "trust", "ls"); strings.Contains(out, "example.org/app/") || !strings.Contains(out, "backend:1965") {
		t.Fatalf("trust ls after a revoke:\n%s", out)
	}
}

func TestClusterCommands(t *testing.T) {
	sock, n := openCLINode(t)
	out := cli(t, sock, "cluster", "status")
	for _, want := range []string{"node           n1\n", "state          leader\n", "leader         n1 (local:n1)\n", "peers          n1 local:n1\n",
		"state hash     " + n.Status().StateHash + "\n", "applied index  "} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster status lacks %q:\n%s", want, out)
		}
	}
	var st cluster.Status
	if err := json.Unmarshal([]byte(cli(t, sock, "cluster", "status", "--json")), &st); err != nil || st.NodeID != "n1" || st.State != "leader" {
		t.Fatalf("cluster status --json = %+v, %v", st, err)
	}
	cliErr(t, sock, `addr: "192.0.2.4" is not host:port`, "cluster", "join", "n4", "192.0.2.4")
	cliErr(t, sock, "id: name \"N4\": not a valid name", "cluster", "join", "N4", "192.0.2.4:7000")
	cliErr(t, sock, "n1 is the cluster's only member", "cluster", "leave", "n1")
	cliErr(t, sock, `no member "n9"`, "cluster", "leave", "n9")
	if peers := n.Status().Peers; len(peers) != 1 {
		t.Fatalf("refused commands changed the membership: %v", peers)
	}
}

func TestBanListConsistent(t *testing.T) {
	sock, _ := openCLINode(t)
	cli(t, sock, "ban", "add", "192.0.2.7", "--for", "1h")
	var bans []admin.BanEntry
	if err := json.Unmarshal([]byte(cli(t, sock, "ban", "ls", "--consistent", "--json")), &bans); err != nil || len(bans) != 1 || bans[0].Prefix != "192.0.2.7/32" {
		t.Fatalf("ban ls --consistent --json = %+v, %v", bans, err)
	}
}

// Every operator command takes the admin flags and only those; every
// listing takes --json, and every state listing --consistent.
func TestStateCommandsFlags(t *testing.T) {
	for _, tt := range []struct {
		path  []string
		flags []string
	}{
		{[]string{"rule", "ls"}, []string{"--json", "--consistent"}},
		{[]string{"rule", "allow", "ls"}, []string{"--json", "--consistent"}},
		{[]string{"rule", "deny", "ls"}, []string{"--json", "--consistent"}},
		{[]string{"rule", "allow", "add"}, nil},
		{[]string{"rule", "deny", "add"}, []string{"--force"}},
		{[]string{"rule", "deny", "rm"}, nil},
		{[]string{"trust", "ls"}, []string{"--json", "--consistent", "--kind"}},
		{[]string{"trust", "approve"}, []string{"--kind", "--subject"}},
		{[]string{"trust", "revoke"}, []string{"--kind", "--subject"}},
		{[]string{"cluster", "status"}, []string{"--json"}},
		{[]string{"cluster", "join"}, nil},
		{[]string{"cluster", "leave"}, nil},
		{[]string{"cluster", "snapshot", "save"}, nil},
		{[]string{"cluster", "snapshot", "restore"}, []string{"--force"}},
		{[]string{"ban", "ls"}, []string{"--json", "--consistent"}},
	} {
		name := strings.Join(tt.path, " ")
		help, err := execute(t, append(tt.path, "--help")...)
		if err != nil {
			t.Fatalf("%s --help: %v", name, err)
		}
		for _, f := range append([]string{"--socket", "--config", "--data-dir", "--timeout"}, tt.flags...) {
			if !strings.Contains(help, f) {
				t.Errorf("%s --help lacks %s:\n%s", name, f, help)
			}
		}
		for _, f := range []string{"--listen", "--log-level"} {
			if strings.Contains(help, f) {
				t.Errorf("%s --help lists %s", name, f)
			}
		}
	}
}
