package natsplane_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/nats-io/nats.go"
)

// startCluster starts servers ids of a new authority, cluster "edge", clustered over TLS routes on
// loopback, every one with the same route list.
func startCluster(t *testing.T, ids []string) map[string]*natsplane.Server {
	t.Helper()
	l := newPKI(t, ids...)
	routes := make([]string, len(ids))
	for i := range ids {
		routes[i] = freeAddr(t)
	}
	out := map[string]*natsplane.Server{}
	for i, id := range ids {
		out[id] = start(t, natsplane.Config{
			Name: id, ClusterName: "edge", StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: logger(t),
			ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, id), Users: users(ids...),
			ClusterListen: routes[i], ClusterTLS: routeTLS(t, l, id), Routes: routes,
		})
	}
	return out
}

// TestClusterR3SurvivesLossOfOneServer clusters three servers, creates R3
// streams, publishes, shuts the stream's leader down, and reads the event
// back from the two others, which also go on taking new ones.
func TestClusterR3SurvivesLossOfOneServer(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	servers := startCluster(t, ids)
	cfg := natsplane.StreamsConfig{ClusterName: "edge", Replicas: servers["n1"].Replicas()}
	if cfg.Replicas != 3 {
		t.Fatalf("replicas %d, want 3", cfg.Replicas)
	}
	js1 := jsOf(t, servers["n1"].Conn())
	if err := natsplane.WaitStreams(ctxT(t), js1, cfg, func(err error) { t.Logf("streams not yet: %v", err) }); err != nil {
		t.Fatal(err)
	}
	// Again from another node: nothing changes.
	if err := natsplane.EnsureStreams(ctxT(t), jsOf(t, servers["n2"].Conn()), cfg); err != nil {
		t.Fatalf("EnsureStreams from n2: %v", err)
	}

	subj := natsplane.Subject("edge", natsplane.SubjectBanAdded)
	if _, err := js1.PublishMsg(ctxT(t), &nats.Msg{Subject: subj, Data: []byte("first"), Header: nats.Header{"Nats-Msg-Id": []string{"1"}}}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	var leader string
	eventually(t, "every replica current", func(ctx context.Context) error {
		st, err := js1.Stream(ctx, natsplane.StreamEvents)
		if err != nil {
			return err
		}
		c := st.CachedInfo().Cluster
		if c == nil || c.Leader == "" || len(c.Replicas) != 2 {
			return fmt.Errorf("cluster info %+v", c)
		}
		for _, r := range c.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s not current", r.Name)
			}
		}
		names := []string{c.Leader, c.Replicas[0].Name, c.Replicas[1].Name}
		slices.Sort(names)
		if !slices.Equal(names, ids) {
			return fmt.Errorf("stream on %v, want %v", names, ids)
		}
		leader = c.Leader
		return nil
	})

	t.Logf("shutting down %s, the stream's leader", leader)
	if err := servers[leader].Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == leader {
			continue
		}
		js := jsOf(t, servers[id].Conn())
		eventually(t, id+" reads the event", func(ctx context.Context) error {
			st, err := js.Stream(ctx, natsplane.StreamEvents)
			if err != nil {
				return err
			}
			m, err := st.GetMsg(ctx, 1)
			if err != nil {
				return err
			}
			if string(m.Data) != "first" {
				return fmt.Errorf("message 1 is %q", m.Data)
			}
			return nil
		})
		eventually(t, id+" publishes", func(ctx context.Context) error {
			ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte("after"), Header: nats.Header{"Nats-Msg-Id": []string{"2"}}})
			if err != nil {
				return err
			}
			if ack.Sequence != 2 {
				return fmt.Errorf("sequence %d, want 2 (one new event, however many nodes sent it)", ack.Sequence)
			}
			return nil
		})
	}
}

// TestRoutePortRefusesStrangers dials a route port with a node
// certificate of another authority and with the admin's certificate: the
// server refuses both handshakes, so neither can join the cluster as a
// server and read its streams.
func TestRoutePortRefusesStrangers(t *testing.T) {
	ids := []string{"n1", "n2"}
	l := newPKI(t, ids...)
	addr := freeAddr(t)
	start(t, natsplane.Config{
		Name: "n1", StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: logger(t),
		ClientListen: "127.0.0.1:0", ClientTLS: clientTLS(t, l, "n1"), Users: users(ids...),
		ClusterListen: addr, ClusterTLS: routeTLS(t, l, "n1"), Routes: []string{addr, freeAddr(t)},
	})
	other := newPKI(t, ids...) // another authority, same names
	foreign, err := tls.LoadX509KeyPair(other.Node("n2").Cert, other.Node("n2").Key)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]*tls.Config{
		// The client trusts anything and offers its certificate whatever
		// the server asks for: only the server can refuse.
		"another authority": {
			MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil },
		},
		"the admin": load(t, l.Admin()).ClientConfig(""),
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				return // refused in the handshake
			}
			defer c.Close()
			// In TLS 1.3 the client finishes first; the server's refusal
			// arrives on the first read.
			_ = c.SetReadDeadline(time.Now().Add(patience))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("the route port served a stranger")
			}
		})
	}
	// A node of the cluster is let in (the route protocol starts: the
	// server sends its INFO).
	c, err := tls.Dial("tcp", addr, load(t, l.Node("n2")).ClientConfig(""))
	if err != nil {
		t.Fatalf("n2: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 4)); err != nil {
		t.Fatalf("n2 on the route port: %v", err)
	}
}
