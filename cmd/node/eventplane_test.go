package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/config"
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
