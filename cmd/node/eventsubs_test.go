package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNode starts node n1 in process with a NATS client port (TLS, the
// cluster's certificates) and a claimed prefix /app/ on localhost.
func natsNode(t *testing.T) (*node, *pki.Layout, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	l, err := pki.Init(filepath.Join(dir, "certs"), pki.InitOptions{Nodes: []string{"n1"}})
	if err != nil {
		t.Fatal(err)
	}
	docroot := filepath.Join(dir, "docroot")
	if err := os.MkdirAll(filepath.Join(docroot, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docroot, "app", "index.gmi"), []byte("# app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.Node.ID = "n1"
	cfg.Node.DataDir = filepath.Join(dir, "data")
	cfg.Gateway.Listen = "127.0.0.1:0"
	claim, rest := config.DefaultRoute(), config.DefaultRoute()
	claim.Prefix, claim.TOFU, claim.Docroot = "/app/", config.TOFUClaim, docroot
	rest.Prefix, rest.Docroot = "/", docroot
	cfg.Gateway.Hosts = []config.HostConfig{{Name: "localhost", Routes: []config.RouteConfig{claim, rest}}}
	cfg.Cluster.Certs = l.Dir
	cfg.NATS.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := startNode(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.close(context.Background()) })
	return n, l, cfg
}

// dialNATS connects to the node's client port with the credentials f,
// reporting asynchronous errors (permission violations) on the channel.
func dialNATS(t *testing.T, n *node, f pki.Files) (*nats.Conn, <-chan error) {
	t.Helper()
	cred, err := pki.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect("tls://"+n.events.clientAddr().String(), nats.Secure(cred.ClientConfig("")), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// requestBan sends body on cmd.ban and decodes the reply.
func requestBan(t *testing.T, nc *nats.Conn, body string) events.BanReply {
	t.Helper()
	m, err := nc.Request(events.BanSubject("chimalli"), []byte(body), 30*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", body, err)
	}
	var r events.BanReply
	dec := json.NewDecoder(strings.NewReader(string(m.Data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("reply %q: %v", m.Data, err)
	}
	return r
}

func activeBans(n *node) []string {
	var out []string
	for _, b := range n.state.ActiveBans(time.Now()) {
		out = append(out, b.Prefix.String())
	}
	return out
}

// TestExternalBanRequest: the admin identity requests bans on cmd.ban; a
// good request commits and is answered with its index; bad ones are
// answered with an error and apply nothing; a node's identity may not
// request at all.
func TestExternalBanRequest(t *testing.T) {
	n, l, _ := natsNode(t)
	admin, _ := dialNATS(t, n, l.Admin())

	r := requestBan(t, admin, `{"prefix":"192.0.2.7","duration":"1h","reason":"log_analyser"}`)
	if r.Error != "" || r.Index == 0 {
		t.Fatalf("good request: %+v", r)
	}
	bans := n.state.ActiveBans(time.Now())
	if len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("192.0.2.7/32") || bans[0].Reason != "log_analyser" || bans[0].Until.IsZero() {
		t.Fatalf("bans after the request: %+v", bans)
	}
	applied, _ := n.state.Applied()
	if applied < r.Index {
		t.Errorf("replied index %d, applied %d", r.Index, applied)
	}

	for _, tc := range []struct{ name, body, want string }{
		{"invalid JSON", `{"prefix":"192.0.2.8"`, "bad ban request"},
		{"not an object", `"192.0.2.8"`, "bad ban request"},
		{"unknown field", `{"prefix":"192.0.2.8","duration":"1h","until":"never"}`, `unknown field "until"`},
		{"bad CIDR", `{"prefix":"192.0.2.0/33","duration":"1h"}`, "prefix length"},
		{"zero duration", `{"prefix":"192.0.2.8","duration":"0s"}`, "must be positive"},
		{"too broad without force", `{"prefix":"10.0.0.0/8","duration":"1h"}`, `send "force": true`},
		{"bad reason", `{"prefix":"192.0.2.8","duration":"1h","reason":"Not A Token"}`, "reason:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := requestBan(t, admin, tc.body)
			if r.Index != 0 || !strings.Contains(r.Error, tc.want) {
				t.Fatalf("reply %+v; want an error with %q", r, tc.want)
			}
		})
	}
	if got := activeBans(n); len(got) != 1 {
		t.Fatalf("bad requests applied something: %v", got)
	}
	if a, _ := n.state.Applied(); a != applied {
		t.Errorf("applied index moved from %d to %d on bad requests", applied, a)
	}

	t.Run("node identity refused", func(t *testing.T) {
		nodeConn, errs := dialNATS(t, n, l.Node("n1"))
		_, err := nodeConn.Request(events.BanSubject("chimalli"), []byte(`{"prefix":"192.0.2.9","duration":"1h"}`), 5*time.Second)
		if err == nil {
			t.Fatal("a node's identity got an answer on cmd.ban")
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("error %v, want a permission violation", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no permission violation")
		}
		// A request after it is answered, so the refused one would have
		// been applied by now.
		if r := requestBan(t, admin, `{"prefix":"192.0.2.10","duration":"1h"}`); r.Error != "" {
			t.Fatal(r.Error)
		}
		for _, p := range activeBans(n) {
			if p == "192.0.2.9/32" {
				t.Fatal("the node identity's request was applied")
			}
		}
	})
}

// TestTrustConflictPublished: a client presenting another certificate on
// a claimed prefix is refused with 61 and the node publishes the conflict
// on trust.conflict, with both identities' fingerprints, into
// CHIMALLI_AUDIT.
func TestTrustConflictPublished(t *testing.T) {
	n, l, _ := natsNode(t)
	alice, mallory := tofutest.LoopbackCert(t, "alice"), tofutest.LoopbackCert(t, "mallory")
	addr := n.srv.Addr().String()
	if line, err := fetchAs("", addr, "/app/", &alice); err != nil || !strings.HasPrefix(line, "20") {
		t.Fatalf("alice's first use: %q, %v", line, err)
	}
	if line, err := fetchAs("", addr, "/app/", &mallory); err != nil || !strings.HasPrefix(line, "61") {
		t.Fatalf("mallory: %q, %v; want 61", line, err)
	}
	admin, _ := dialNATS(t, n, l.Admin())
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "CHIMALLI_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	var m *jetstream.RawStreamMsg
	for {
		m, err = st.GetLastMsgForSubject(ctx, events.ConflictSubject("chimalli"))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no trust.conflict message: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var d events.ConflictData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatal(err)
	}
	a, b := tofu.IdentityOf(alice.Leaf), tofu.IdentityOf(mallory.Leaf)
	if d.Kind != "claim" || d.Subject != "localhost/app/" || d.Node != "n1" ||
		d.Pinned != (events.ConflictIdentity{Cert: a.CertFingerprint(), SPKI: a.SPKIFingerprint()}) ||
		d.Presented != (events.ConflictIdentity{Cert: b.CertFingerprint(), SPKI: b.SPKIFingerprint()}) {
		t.Errorf("conflict %+v", d)
	}
	if d.Client == "" || strings.Contains(string(m.Data), "127.0.0.1") {
		t.Errorf("client %q in %s: want its hash only", d.Client, m.Data)
	}
	if m.Header.Get(events.HeaderType) != "io.github.chimalli.trust.conflict" {
		t.Errorf("headers %v", m.Header)
	}
}
