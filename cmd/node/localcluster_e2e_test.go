package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// exampleDir is the walk-through this test follows.
const exampleDir = "../../docs/examples/local-cluster"

// copyExample copies the local-cluster example into a temp dir, with its
// fixed ports (Gemini 197N, cluster 700N, NATS clients 422N, NATS routes
// 622N) replaced by free ones so the test cannot collide with anything
// else on the machine. It returns the dir, each node's Gemini address and
// each node's NATS client address.
func copyExample(t *testing.T) (dir string, gemini, natsAddr map[string]string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(exampleDir)); err != nil {
		t.Fatal(err)
	}
	gemini, natsAddr = map[string]string{}, map[string]string{}
	repl := []string{}
	for i := 1; i <= 3; i++ {
		free := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
		g, c, n, r := free(), free(), free(), free()
		repl = append(repl, fmt.Sprintf("127.0.0.1:197%d", i), g, fmt.Sprintf("127.0.0.1:700%d", i), c,
			fmt.Sprintf("127.0.0.1:422%d", i), n, fmt.Sprintf("127.0.0.1:622%d", i), r)
		gemini[fmt.Sprintf("n%d", i)] = g
		natsAddr[fmt.Sprintf("n%d", i)] = n
	}
	r := strings.NewReplacer(repl...)
	for i := 1; i <= 3; i++ {
		p := filepath.Join(dir, fmt.Sprintf("n%d.yaml", i))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(r.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, gemini, natsAddr
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2ELocalClusterExample follows docs/examples/local-cluster/README.md
// with the built binary: cluster init, three nodes from n1..n3.yaml, a ban
// through n1 enforced by n3, a claim made on n1 holding on n2 and n3, a
// node killed with -9 while the others go on writing, and its catch-up.
func TestE2ELocalClusterExample(t *testing.T) {
	dir, gemini, natsAddr := copyExample(t)
	if out, errOut, code := chimalli(t, dir, "cluster", "init", "--nodes", "n1,n2,n3", "--out", "certs"); code != 0 {
		t.Fatalf("cluster init: %d %q %q", code, out, errOut)
	}
	nodes := map[string]*nodeProc{}
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes[id] = spawnNode(t, dir, "--config", id+".yaml")
	}
	// The README's ban, through n1, listed by n3.
	eventually(t, "a ban through n1 (a leader elected)", func() bool {
		_, _, code := chimalli(t, dir, "ban", "add", "--config", "n1.yaml", "192.0.2.7", "--for", "1h")
		return code == 0
	})
	// n3 applies it within milliseconds (ban ls reads n3's own state).
	eventually(t, "n3 to list the ban added through n1", func() bool {
		out, _, code := chimalli(t, dir, "ban", "ls", "--config", "n3.yaml")
		return code == 0 && strings.Contains(out, "192.0.2.7/32")
	})
	// A ban of a client this test can connect from: n3 refuses it.
	if out, errOut, code := chimalli(t, dir, "ban", "add", "--config", "n1.yaml", "127.0.0.7", "--for", "1h"); code != 0 {
		t.Fatalf("ban add 127.0.0.7: %d %q %q", code, out, errOut)
	}
	eventually(t, "n3 to refuse the client banned through n1", func() bool {
		_, err := fetchFrom("127.0.0.7", gemini["n3"], "/")
		return err != nil && isRefusal(err)
	})
	if line, err := fetchFrom("127.0.0.8", gemini["n3"], "/"); err != nil || !strings.HasPrefix(line, "20") {
		t.Fatalf("another client on n3: %q, %v", line, err)
	}

	// The README's `nats stream ls` with the admin certificate, through
	// n3's client port: both streams, three copies each.
	checkNATSStreams(t, dir, natsAddr["n3"])
	// The two bans are committed state events: in CHIMALLI_EVENTS once
	// each, as CloudEvents, in index order, with no raw address anywhere.
	checkStateEvents(t, dir, natsAddr["n2"], 2, []string{"192.0.2.7", "127.0.0.7"})

	// The CLI against a follower: its writes are forwarded to the leader
	// and hold everywhere; `--consistent` reads through the leader.
	status := func(id string) (st struct {
		NodeID    string `json:"node_id"`
		Leader    string `json:"leader"`
		State     string `json:"state"`
		Applied   uint64 `json:"applied_index"`
		StateHash string `json:"state_hash"`
		Peers     []string
	}) {
		out, errOut, code := chimalli(t, dir, "cluster", "status", "--config", id+".yaml", "--json")
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("cluster status on %s: %d %q %q", id, code, out, errOut)
		}
		return st
	}
	leader := status("n1").Leader
	var followers []string
	for _, id := range []string{"n1", "n2", "n3"} {
		if id != leader {
			followers = append(followers, id)
		}
	}
	if leader == "" || len(followers) != 2 {
		t.Fatalf("leader %q, followers %v", leader, followers)
	}
	if out, errOut, code := chimalli(t, dir, "rule", "deny", "add", "--config", followers[0]+".yaml", "127.0.0.12"); code != 0 {
		t.Fatalf("rule deny add on follower %s: %d %q %q", followers[0], code, out, errOut)
	}
	if out, errOut, code := chimalli(t, dir, "ban", "ls", "--consistent", "--config", followers[1]+".yaml"); code != 0 || !strings.Contains(out, "127.0.0.7/32") {
		t.Fatalf("ban ls --consistent on follower %s: %d %q %q", followers[1], code, out, errOut)
	}
	eventually(t, "the deny rule added through a follower to hold on the leader", func() bool {
		_, err := fetchFrom("127.0.0.12", gemini[leader], "/")
		return err != nil && isRefusal(err)
	})
	eventually(t, "equal state hashes on the three nodes", func() bool {
		a, b, c := status("n1"), status("n2"), status("n3")
		return a.StateHash == b.StateHash && b.StateHash == c.StateHash && a.Applied == c.Applied
	})

	// The first certificate on /claim/, through n1, owns it on n2 and n3.
	alice, mallory := tofutest.LoopbackCert(t, "alice"), tofutest.LoopbackCert(t, "mallory")
	if line, err := fetchAs("", gemini["n1"], "/claim/", &alice); err != nil || !strings.HasPrefix(line, "20") {
		t.Fatalf("alice's first use on n1: %q, %v", line, err)
	}
	for _, id := range []string{"n2", "n3"} {
		if line, err := fetchAs("", gemini[id], "/claim/", &mallory); err != nil || !strings.HasPrefix(line, "61") {
			t.Fatalf("mallory on %s: %q, %v; want 61", id, line, err)
		}
		if line, err := fetchAs("", gemini[id], "/claim/", &alice); err != nil || !strings.HasPrefix(line, "20") {
			t.Fatalf("alice on %s: %q, %v", id, line, err)
		}
	}
	// Each refusal is a trust conflict published by the node that saw it.
	checkConflicts(t, dir, natsAddr["n1"], []string{"n2", "n3"}, tofu.IdentityOf(alice.Leaf), tofu.IdentityOf(mallory.Leaf))

	// Session tickets are sealed with keys every node shares (the leader
	// commits them), so a session begun on n1 resumes on n2. (With a
	// certificate: this host has certificate routes, where an anonymous
	// session is never resumed; see docs/security.md.)
	cache := tls.NewLRUClientSessionCache(8)
	try := 0
	resumeOn := func(addr string) (bool, error) {
		// A fresh source address per try keeps the attempts under the
		// per-client rate limit.
		try++
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(try))}, Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, ClientSessionCache: cache,
			Certificates: []tls.Certificate{alice}})
		if err != nil {
			return false, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "gemini://localhost/\r\n")
		io.ReadAll(c) // TLS 1.3 tickets arrive after the handshake
		return c.ConnectionState().DidResume, nil
	}
	eventually(t, "a session from n1 to resume on n2", func() bool {
		if _, err := resumeOn(gemini["n1"]); err != nil {
			t.Fatal(err)
		}
		resumed, err := resumeOn(gemini["n2"])
		return err == nil && resumed
	})

	// n1 killed with -9: the others still commit (a new leader if n1 led).
	nodes["n1"].cmd.Process.Kill()
	<-nodes["n1"].exited
	nodes["n1"].done = true
	eventually(t, "a ban through n2 with n1 down", func() bool {
		_, _, code := chimalli(t, dir, "ban", "add", "--config", "n2.yaml", "127.0.0.9", "--for", "1h", "--timeout", "3s")
		return code == 0
	})
	eventually(t, "n3 to refuse the client banned through n2", func() bool {
		_, err := fetchFrom("127.0.0.9", gemini["n3"], "/")
		return err != nil && isRefusal(err)
	})
	// n1 comes back with its log and catches up.
	nodes["n1"] = spawnNode(t, dir, "--config", "n1.yaml")
	eventually(t, "n1 to catch up after the restart", func() bool {
		_, err := fetchFrom("127.0.0.9", gemini["n1"], "/")
		return err != nil && isRefusal(err)
	})
	if line, err := fetchAs("", gemini["n1"], "/claim/", &mallory); err != nil || !strings.HasPrefix(line, "61") {
		t.Fatalf("mallory on the restarted n1: %q, %v; want 61", line, err)
	}
}

// natsAsAdmin connects to a node's NATS client port at addr with the
// admin certificate of the cluster in dir; the caller closes nc.
func natsAsAdmin(t *testing.T, dir, addr string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect("tls://"+addr,
		nats.ClientCert(filepath.Join(dir, "certs", "admin.crt"), filepath.Join(dir, "certs", "admin.key")),
		nats.RootCAs(filepath.Join(dir, "certs", "ca.crt")))
	if err != nil {
		t.Fatalf("nats as the admin: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return nc, js
}

// fetchNow returns the messages (up to 100) stream holds on subject now,
// through a new ordered consumer; ok is false when they could not be read.
func fetchNow(js jetstream.JetStream, stream, subject string) (msgs []jetstream.Msg, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, false
	}
	batch, err := c.FetchNoWait(100)
	if err != nil {
		return nil, false
	}
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, true
}

// checkNATSStreams does what the README's `nats --tlscert certs/admin.crt
// … stream ls` does, with nats.go: it connects to a node's NATS client
// port with the admin certificate and waits until both streams exist with
// three replicas. A client without a certificate is refused.
func checkNATSStreams(t *testing.T, dir, addr string) {
	t.Helper()
	ca := nats.RootCAs(filepath.Join(dir, "certs", "ca.crt"))
	if nc, err := nats.Connect("tls://"+addr, ca, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("the NATS client port let in a client without a certificate")
	}
	nc, js := natsAsAdmin(t, dir, addr)
	defer nc.Close()
	eventually(t, "both streams with three replicas", func() bool {
		for _, name := range []string{"CHIMALLI_EVENTS", "CHIMALLI_AUDIT"} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := js.Stream(ctx, name)
			cancel()
			if err != nil || st.CachedInfo().Config.Replicas != 3 {
				return false
			}
		}
		return true
	})
}

// checkStateEvents waits until CHIMALLI_EVENTS holds want ban.added events
// (read through addr with the admin certificate) and checks them: one per
// Raft index, indexes increasing, CloudEvents headers, and none of the
// raw addresses in subjects, headers or data.
func checkStateEvents(t *testing.T, dir, addr string, want int, raw []string) {
	t.Helper()
	nc, js := natsAsAdmin(t, dir, addr)
	defer nc.Close()
	var msgs []jetstream.Msg
	eventually(t, fmt.Sprintf("%d ban.added events in CHIMALLI_EVENTS", want), func() bool {
		var ok bool
		msgs, ok = fetchNow(js, "CHIMALLI_EVENTS", "chimalli.chimalli.ban.added")
		return ok && len(msgs) == want
	})
	var last int
	ids := map[string]bool{}
	for _, m := range msgs {
		h := m.Headers()
		id := h.Get("Nats-Msg-Id")
		if ids[id] || h.Get("ce-specversion") != "1.0" || h.Get("ce-id") != id {
			t.Fatalf("message %q: duplicate id or not a CloudEvent: %v", m.Subject(), h)
		}
		ids[id] = true
		idx := 0
		fmt.Sscan(h.Get("ce-raftindex"), &idx)
		if idx <= last {
			t.Fatalf("raft index %d after %d", idx, last)
		}
		last = idx
		all := m.Subject() + fmt.Sprint(h) + string(m.Data())
		for _, a := range raw {
			if strings.Contains(all, a) {
				t.Fatalf("a state event carries the raw address %s: %s", a, all)
			}
		}
	}
}

// checkConflicts waits until CHIMALLI_AUDIT holds one trust.conflict per
// node in nodes (read through addr with the admin certificate), each with
// the pinned and the presented identity.
func checkConflicts(t *testing.T, dir, addr string, nodes []string, pinned, presented tofu.Identity) {
	t.Helper()
	nc, js := natsAsAdmin(t, dir, addr)
	defer nc.Close()
	var got []events.ConflictData
	eventually(t, fmt.Sprintf("%d trust conflicts in CHIMALLI_AUDIT", len(nodes)), func() bool {
		msgs, ok := fetchNow(js, "CHIMALLI_AUDIT", events.ConflictSubject("chimalli"))
		if !ok {
			return false
		}
		got = got[:0]
		for _, m := range msgs {
			var d events.ConflictData
			if err := json.Unmarshal(m.Data(), &d); err != nil {
				t.Fatalf("conflict %q: %v", m.Data(), err)
			}
			got = append(got, d)
		}
		return len(got) == len(nodes)
	})
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.Node] = true
		if d.Kind != "claim" || d.Subject != "localhost/claim/" || d.Pinned.Cert != pinned.CertFingerprint() ||
			d.Presented.Cert != presented.CertFingerprint() || d.Presented.SPKI != presented.SPKIFingerprint() {
			t.Errorf("conflict %+v", d)
		}
	}
	for _, n := range nodes {
		if !seen[n] {
			t.Errorf("no conflict from %s: %+v", n, got)
		}
	}
}
