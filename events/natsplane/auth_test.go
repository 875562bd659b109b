package natsplane

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/pki"
	"github.com/nats-io/nats.go"
)

// TestInProcessKeyIsUselessOverTCP presents the in-process user's NKey on
// the client port, with a valid cluster certificate: the server refuses
// it, since that user may connect in process only.
func TestInProcessKeyIsUselessOverTCP(t *testing.T) {
	l, err := pki.Init(filepath.Join(t.TempDir(), "certs"), pki.InitOptions{Nodes: []string{"n1"}})
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
	s, err := New(Config{
		Name: "n1", StoreDir: t.TempDir(), ClientListen: "127.0.0.1:0", ClientTLS: srvTLS,
		Users: []User{{Cert: pki.Identity{Kind: pki.KindNode, Name: "n1"}.URI().String(), Role: RoleNode}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url := "tls://" + s.ClientAddr().String()
	// The certificate alone is let in: the key is what is refused.
	nc, err := nats.Connect(url, nats.Secure(cred.ClientConfig("")), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("n1's certificate alone: %v", err)
	}
	nc.Close()
	nc, err = nats.Connect(url, nats.Secure(cred.ClientConfig("")), nats.MaxReconnects(0),
		nats.Nkey(mustPublic(s.key), s.key.Sign))
	if !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("the in-process NKey over TCP: %v, want an authorization violation", err)
	}
}
