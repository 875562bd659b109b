package natsplane_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/ops/pki"
	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// patience bounds every wait on a condition, so a broken test fails
// instead of hanging; no assertion depends on it.
const patience = 30 * time.Second

// newPKI initialises a cluster authority with certificates for nodes and
// the admin in a temporary directory.
func newPKI(t *testing.T, nodes ...string) *pki.Layout {
	t.Helper()
	l, err := pki.Init(filepath.Join(t.TempDir(), "certs"), pki.InitOptions{Nodes: nodes})
	if err != nil {
		t.Fatalf("pki.Init: %v", err)
	}
	return l
}

func load(t *testing.T, f pki.Files) *pki.Credentials {
	t.Helper()
	c, err := pki.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// users maps the cluster's node certificates and the admin's to users, as
// cmd/node does.
func users(nodes ...string) []natsplane.User {
	out := []natsplane.User{{Cert: pki.Identity{Kind: pki.KindAdmin, Name: pki.AdminName}.URI().String(), Role: natsplane.RoleAdmin}}
	for _, n := range nodes {
		out = append(out, natsplane.User{Cert: pki.Identity{Kind: pki.KindNode, Name: n}.URI().String(), Role: natsplane.RoleNode})
	}
	return out
}

// clientTLS returns the client port's configuration of node id.
func clientTLS(t *testing.T, l *pki.Layout, id string) *tls.Config {
	t.Helper()
	c, err := load(t, l.Node(id)).ServerConfig(pki.KindNode, pki.KindAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// routeTLS returns the route port's configuration of node id.
func routeTLS(t *testing.T, l *pki.Layout, id string) *tls.Config {
	t.Helper()
	c, err := load(t, l.Node(id)).PeerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logger sends the servers' notices, warnings and errors to the test log
// (nats-server's debug lines would drown them).
func logger(t *testing.T) *slog.Logger {
	return slog.New(minLevel{testlog.New(t).Handler(), slog.LevelInfo})
}

// minLevel drops the records below its level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}

func (h minLevel) WithGroup(g string) slog.Handler { return minLevel{h.Handler.WithGroup(g), h.min} }

// start builds and starts a server, closed at the end of the test.
func start(t *testing.T, cfg natsplane.Config) *natsplane.Server {
	t.Helper()
	s, err := natsplane.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// freeAddr returns a loopback address with a port free a moment ago, for
// routes that must be known before their servers start.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// jsOf returns a JetStream context on nc.
func jsOf(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// eventually calls cond until it returns nil or patience runs out. Each
// call gets a context of its own, bounded at 1 s: a JetStream request sent
// while a group has no leader gets no answer and is asked again.
func eventually(t *testing.T, what string, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctxT returns a context bounded by patience.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}
