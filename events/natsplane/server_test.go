package natsplane_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestInProcessOnly is the zero-config node: no port at all, JetStream in
// the data directory, R1 streams, and publishing de-duplicated by
// Nats-Msg-Id.
func TestInProcessOnly(t *testing.T) {
	store := filepath.Join(t.TempDir(), "nats")
	s := start(t, natsplane.Config{Name: "n1", StoreDir: store, Logger: logger(t)})
	if a := s.ClientAddr(); a != nil {
		t.Fatalf("client port %s, want none", a)
	}
	if fi, err := os.Stat(store); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store dir: %v, %v; want mode 0700", fi, err)
	}
	js := jsOf(t, s.Conn())
	cfg := natsplane.StreamsConfig{Replicas: s.Replicas(), AuditMaxAge: time.Hour, AuditMaxBytes: 1 << 20}
	for range 2 { // idempotent
		if err := natsplane.EnsureStreams(ctxT(t), js, cfg); err != nil {
			t.Fatalf("EnsureStreams: %v", err)
		}
	}
	ev, err := js.Stream(ctxT(t), natsplane.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info := ev.CachedInfo()
	if info.Config.Replicas != 1 || info.Config.MaxAge != 0 || !slices.Equal(info.Config.Subjects, natsplane.EventSubjects("chimalli")) {
		t.Errorf("events stream config %+v", info.Config)
	}
	au, err := js.Stream(ctxT(t), natsplane.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	if c := au.CachedInfo().Config; c.MaxAge != time.Hour || c.MaxBytes != 1<<20 || c.Duplicates != 10*time.Minute {
		t.Errorf("audit stream config %+v", c)
	}

	subj := natsplane.Subject("chimalli", natsplane.SubjectBanAdded)
	for range 2 {
		ack, err := js.PublishMsg(ctxT(t), &nats.Msg{Subject: subj, Data: []byte("ban"), Header: nats.Header{"Nats-Msg-Id": []string{"raft-7"}}})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ack.Sequence != 1 {
			t.Errorf("sequence %d, want 1 (the second publication a duplicate)", ack.Sequence)
		}
	}
	if _, err := js.Publish(ctxT(t), natsplane.AuditSubject("chimalli", "n1"), []byte("{}")); err != nil {
		t.Fatalf("publish audit: %v", err)
	}
	if err := s.Conn().Publish("elsewhere.subject", []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a permission violation", func(ctx context.Context) error {
		if err := s.Conn().Flush(); err != nil {
			return err
		}
		if err := s.Conn().LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
			return fmt.Errorf("last error %v", err)
		}
		return nil
	})

	// Changed limits are applied to the existing stream.
	cfg.AuditMaxAge = 2 * time.Hour
	if err := natsplane.EnsureStreams(ctxT(t), js, cfg); err != nil {
		t.Fatal(err)
	}
	if info, err := au.Info(ctxT(t)); err != nil || info.Config.MaxAge != 2*time.Hour || info.State.Msgs != 1 {
		t.Errorf("audit stream after update: %+v, %v", info, err)
	}
}

// tlsServer starts a server with a client port on loopback for node n1 of
// l, mapping n1, n2 and the admin.
func tlsServer(t *testing.T, l *pki.Layout) *natsplane.Server {
	t.Helper()
	return start(t, natsplane.Config{
		Name: "n1", StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: logger(t),
		ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, "n1"), Users: users("n1", "n2"),
	})
}

// dialTLS connects to the client port with cfg, reporting asynchronous
// errors (permission violations) on the returned channel.
func dialTLS(s *natsplane.Server, cfg *tls.Config) (*nats.Conn, <-chan error, error) {
	errs := make(chan error, 16)
	nc, err := nats.Connect("tls://"+s.ClientAddr().String(), nats.Secure(cfg), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	return nc, errs, err
}

// wantDenied publishes data on subj over nc and expects the server to
// answer with a permission violation on errs (dialTLS's channel); what
// names the attempt in the failure.
func wantDenied(t *testing.T, nc *nats.Conn, errs <-chan error, subj, data, what string) {
	t.Helper()
	if err := nc.Publish(subj, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("%s: %v, want a permission violation", what, err)
		}
	case <-time.After(patience):
		t.Fatalf("%s: no permission violation", what)
	}
}

// TestClientPortRefusesStrangers checks that the client port lets in only
// certificates of the cluster mapped to a user: not a plaintext client,
// not a TLS client without a certificate, not one certified by another
// authority, not a cluster node without a user.
func TestClientPortRefusesStrangers(t *testing.T) {
	l := newPKI(t, "n1", "n2", "n9")
	other := newPKI(t, "n1", "n2")
	s := tlsServer(t, l)
	roots := load(t, l.Admin()).ClientConfig("").RootCAs

	t.Run("plaintext", func(t *testing.T) {
		c, err := net.Dial("tcp", s.ClientAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(patience))
		r := bufio.NewReader(c)
		info, err := r.ReadString('\n')
		if err != nil || !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO %q, %v; want tls_required", info, err)
		}
		if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\nPUB chimalli.chimalli.ban.added 1\r\nx\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		// The server answers with an error and closes; it never says PONG.
		for {
			line, err := r.ReadString('\n')
			if strings.HasPrefix(line, "PONG") {
				t.Fatal("a plaintext client was served")
			}
			if err != nil {
				return
			}
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		nc, _, err := dialTLS(s, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots})
		if err == nil {
			nc.Close()
			t.Fatal("a client without a certificate connected")
		}
	})
	t.Run("another authority", func(t *testing.T) {
		theirs := load(t, other.Admin())
		cfg := theirs.ClientConfig("")
		cfg.RootCAs = roots // trusts our server: only the server can refuse
		// crypto/tls offers no certificate our authority did not sign; a
		// hostile client offers it anyway.
		foreign, err := tls.LoadX509KeyPair(other.Admin().Cert, other.Admin().Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
		nc, _, err := dialTLS(s, cfg)
		if err == nil {
			nc.Close()
			t.Fatal("a certificate of another authority connected")
		}
	})
	t.Run("node without a user", func(t *testing.T) {
		nc, _, err := dialTLS(s, load(t, l.Node("n9")).ClientConfig(""))
		if !errors.Is(err, nats.ErrAuthorization) {
			if nc != nil {
				nc.Close()
			}
			t.Fatalf("n9, mapped to no user: %v, want an authorization violation", err)
		}
	})
}

// TestClientPortRoles checks what the admin and a node may do through the
// client port: the admin reads the streams; a node publishes under the
// cluster's subjects but nowhere else.
func TestClientPortRoles(t *testing.T) {
	l := newPKI(t, "n1", "n2")
	s := tlsServer(t, l)
	if err := natsplane.EnsureStreams(ctxT(t), jsOf(t, s.Conn()), natsplane.StreamsConfig{Replicas: 1}); err != nil {
		t.Fatal(err)
	}

	node, nodeErrs, err := dialTLS(s, load(t, l.Node("n2")).ClientConfig(""))
	if err != nil {
		t.Fatalf("n2 connect: %v", err)
	}
	defer node.Close()
	subj := natsplane.Subject("chimalli", "trust.pinned")
	if _, err := jsOf(t, node).Publish(ctxT(t), subj, []byte("pin")); err != nil {
		t.Fatalf("n2 publish under its cluster: %v", err)
	}
	wantDenied(t, node, nodeErrs, "elsewhere.subject", "x", "n2 publishing outside chimalli.<cluster>.")

	admin, _, err := dialTLS(s, load(t, l.Admin()).ClientConfig(""))
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer admin.Close()
	ajs := jsOf(t, admin)
	var names []string
	for n := range ajs.StreamNames(ctxT(t)).Name() {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{natsplane.StreamAudit, natsplane.StreamEvents}) {
		t.Errorf("admin lists streams %v", names)
	}
	ev, err := ajs.Stream(ctxT(t), natsplane.StreamEvents)
	if err != nil {
		t.Fatalf("admin opens the events stream: %v", err)
	}
	msg, err := ev.GetLastMsgForSubject(ctxT(t), subj)
	if err != nil || string(msg.Data) != "pin" {
		t.Fatalf("admin reads %v, %v; want the event n2 published", msg, err)
	}
	// The admin may do what a node may not.
	if err := admin.Publish("elsewhere.subject", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := jetstream.New(admin); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesUnsafeConfigs(t *testing.T) {
	l := newPKI(t, "n1")
	noVerify := clientTLS(t, l, "n1")
	noVerify.ClientAuth = tls.RequestClientCert
	store := t.TempDir()
	withClientPort := func(c natsplane.Config) natsplane.Config {
		c.ClientListen, c.ClientTLS, c.Users = "127.0.0.1:0", clientTLS(t, l, "n1"), users("n1")
		return c
	}
	tests := []struct {
		name string
		cfg  natsplane.Config
	}{
		{"no name", natsplane.Config{StoreDir: store}},
		{"no store", natsplane.Config{Name: "n1"}},
		{"bad cluster name", natsplane.Config{Name: "n1", StoreDir: store, ClusterName: "a.b"}},
		{"client port without TLS", natsplane.Config{Name: "n1", StoreDir: store, ClientListen: "127.0.0.1:0", Users: users("n1")}},
		{"client port without verified certificates", natsplane.Config{Name: "n1", StoreDir: store, ClientListen: "127.0.0.1:0", ClientTLS: noVerify, Users: users("n1")}},
		{"client port without users", natsplane.Config{Name: "n1", StoreDir: store, ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, "n1")}},
		{"cluster port without TLS", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "127.0.0.1:0", Routes: []string{"127.0.0.1:1", "127.0.0.1:2"}})},
		{"cluster port without roots", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "127.0.0.1:0", ClusterTLS: clientTLS(t, l, "n1"), Routes: []string{"127.0.0.1:1", "127.0.0.1:2"}})},
		{"cluster port with one route", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "127.0.0.1:0", ClusterTLS: routeTLS(t, l, "n1"), Routes: []string{"127.0.0.1:1"}})},
		{"cluster port without a client port", natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "127.0.0.1:0", ClusterTLS: routeTLS(t, l, "n1"), Routes: []string{"127.0.0.1:1", "127.0.0.1:2"}}},
		{"routes without a cluster port", natsplane.Config{Name: "n1", StoreDir: store, Routes: []string{"127.0.0.1:1", "127.0.0.1:2"}}},
		{"cluster advertise not in the certificate", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "0.0.0.0:6222", ClusterTLS: routeTLS(t, l, "n1"), Routes: []string{"n1:6222", "n2:6222"}, ClusterAdvertise: "n2:6222"})},
		{"cluster advertise not host:port", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterListen: "0.0.0.0:6222", ClusterTLS: routeTLS(t, l, "n1"), Routes: []string{"n1:6222", "n2:6222"}, ClusterAdvertise: "n1"})},
		{"cluster advertise without a cluster port", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClusterAdvertise: "n1:6222"})},
		{"client advertise not in the certificate", withClientPort(natsplane.Config{Name: "n1", StoreDir: store, ClientAdvertise: "10.0.0.9:4222"})},
		{"client advertise without a client port", natsplane.Config{Name: "n1", StoreDir: store, ClientAdvertise: "n1:4222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natsplane.New(tt.cfg)
			if !errors.Is(err, natsplane.ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
			t.Log(err)
		})
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := newPKI(t, "n1")
	s, err := natsplane.New(natsplane.Config{
		Name: "n1", StoreDir: t.TempDir(), ClientListen: ln.Addr().String(),
		ClientTLS: clientTLS(t, l, "n1"), Users: users("n1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(ctxT(t)); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Start on a busy port: %v, want a listen error", err)
	}
}

// TestCmdBanOnlyFromTheAdmin checks who may request a ban on cmd.ban: a
// node answers it (here the server's in-process connection, subscribed
// in a queue group) but a node's certificate may not publish on it; the
// admin's may, and gets the node's answer.
func TestCmdBanOnlyFromTheAdmin(t *testing.T) {
	l := newPKI(t, "n1", "n2")
	s := tlsServer(t, l)
	subj := natsplane.Subject("chimalli", natsplane.SubjectCmdBan)
	got := make(chan string, 16)
	sub, err := s.Conn().QueueSubscribe(subj, "q", func(m *nats.Msg) {
		got <- string(m.Data)
		_ = m.Respond([]byte("answered"))
	})
	if err != nil {
		t.Fatalf("a node subscribing to cmd.ban: %v", err)
	}
	defer sub.Unsubscribe()
	if err := s.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	// The in-process connection is a node too: it may not request.
	if err := s.Conn().Publish(subj, []byte("from n1")); err != nil {
		t.Fatal(err)
	}

	node, nodeErrs, err := dialTLS(s, load(t, l.Node("n2")).ClientConfig(""))
	if err != nil {
		t.Fatalf("n2 connect: %v", err)
	}
	defer node.Close()
	wantDenied(t, node, nodeErrs, subj, "from n2", "n2 publishing on cmd.ban")

	admin, _, err := dialTLS(s, load(t, l.Admin()).ClientConfig(""))
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer admin.Close()
	reply, err := admin.Request(subj, []byte("from admin"), patience)
	if err != nil || string(reply.Data) != "answered" {
		t.Fatalf("admin request: %v, %v", reply, err)
	}
	// The subscriber saw the admin's request and nothing before it.
	if first := <-got; first != "from admin" {
		t.Errorf("the node received %q first; only the admin's request may arrive", first)
	}
	select {
	case m := <-got:
		t.Errorf("the node received %q as well", m)
	default:
	}
}
