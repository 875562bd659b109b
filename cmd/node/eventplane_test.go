package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/nats-io/nats.go/jetstream"
)

// TestZeroConfigEventPlane starts a node with the defaults: its NATS runs
// in process with no port, keeps JetStream in <data_dir>/nats (0700) and
// has both streams, one copy each, before the node serves.
func TestZeroConfigEventPlane(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Node.DataDir = filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	n, err := startNode(context.Background(), cfg, slog.New(slog.DiscardHandler), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close(context.Background())
	if a := n.events.clientAddr(); a != nil || strings.Contains(out.String(), "nats:") {
		t.Errorf("a NATS client port %v on a zero-config node; banner:\n%s", a, out.String())
	}
	if fi, err := os.Stat(cfg.NATSDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, %v; want a 0700 directory", cfg.NATSDir(), fi, err)
	}
	js, err := jetstream.New(n.events.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{natsplane.StreamEvents, natsplane.StreamAudit} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if c := st.CachedInfo().Config; c.Replicas != 1 {
			t.Errorf("%s: %d replicas, want 1", name, c.Replicas)
		}
	}
	au, err := js.Stream(ctx, natsplane.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	if c := au.CachedInfo().Config; c.MaxAge != config.DefaultAuditStreamMaxAge || c.MaxBytes != int64(config.DefaultAuditStreamMaxBytes) {
		t.Errorf("audit stream limits: age %s, bytes %d", c.MaxAge, c.MaxBytes)
	}
}

// TestExternalEventPlane points a node at an external NATS with nats.url
// and TLS files: here another node's embedded server with a client port,
// reached with n2's certificate. The node embeds nothing and creates the
// streams there in the background.
func TestExternalEventPlane(t *testing.T) {
	l, err := pki.Init(filepath.Join(t.TempDir(), "certs"), pki.InitOptions{Nodes: []string{"n1", "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := pki.Load(l.Node("n1"))
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := cred.ServerConfig(pki.KindNode, pki.KindAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := natsplane.New(natsplane.Config{
		Name: "n1", StoreDir: t.TempDir(), ClientListen: "127.0.0.1:0", ClientTLS: srvTLS,
		Users: []natsplane.User{{Cert: pki.Identity{Kind: pki.KindNode, Name: "n2"}.URI().String(), Role: natsplane.RoleNode}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ext.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ext.Close()

	cfg := config.DefaultConfig()
	cfg.Node.ID = "n2"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Node.DataDir = filepath.Join(t.TempDir(), "data")
	n2 := l.Node("n2")
	cfg.NATS.URL = "tls://" + ext.ClientAddr().String()
	cfg.NATS.TLSCA, cfg.NATS.TLSCert, cfg.NATS.TLSKey = n2.CA, n2.Cert, n2.Key
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := startNode(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close(context.Background())
	if n.events.server != nil {
		t.Error("a node with nats.url embedded a server")
	}
	if _, err := os.Stat(cfg.NATSDir()); err == nil {
		t.Errorf("%s exists with nats.url", cfg.NATSDir())
	}
	js, err := jetstream.New(ext.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{natsplane.StreamEvents, natsplane.StreamAudit} {
		for {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			_, err := js.Stream(actx, name)
			acancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("stream %s never created on the external NATS: %v", name, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestAuditRecordsReachTheStream serves a request on a zero-config node
// with an audit file: its record is in the file and, under the same ID, in
// CHIMALLI_AUDIT on the node's subject, and the spool directory is 0700
// under the data directory.
func TestAuditRecordsReachTheStream(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Node.ID = "edge-7"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Node.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Audit.File = filepath.Join(t.TempDir(), "audit.jsonl")
	n, err := startNode(context.Background(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close(context.Background())
	if _, err := fetchFrom("", n.srv.Addr().String(), "/"); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(n.events.Conn())
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	eventually(t, "the record in CHIMALLI_AUDIT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := js.Stream(ctx, natsplane.StreamAudit)
		if err != nil {
			return false
		}
		msg, err = st.GetLastMsgForSubject(ctx, natsplane.AuditSubject(cfg.NATS.ClusterName, "edge-7"))
		return err == nil
	})
	rec, err := events.ParseAuditRecord(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != 20 || rec.Node != "edge-7" || msg.Header.Get(jetstream.MsgIDHeader) != rec.ID {
		t.Fatalf("record %+v, headers %v", rec, msg.Header)
	}
	eventually(t, "the record in the audit file", func() bool {
		b, _ := os.ReadFile(cfg.Audit.File)
		return bytes.Contains(b, []byte(`"id":"`+rec.ID+`"`))
	})
	if fi, err := os.Stat(cfg.AuditSpoolDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, %v; want a 0700 directory", cfg.AuditSpoolDir(), fi, err)
	}
}
