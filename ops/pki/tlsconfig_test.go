package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestMutualTLSBetweenNodes(t *testing.T) {
	l := newCluster(t, "n1", "n2", "n3")
	n1, n2 := mustLoad(t, l.Node("n1")), mustLoad(t, l.Node("n2"))
	srv, err := n1.ServerConfig(KindNode)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cli    *tls.Config
		host   string
		wantOK bool
	}{
		{"server named by node id", n2.ClientConfig("n1"), "127.0.0.1", true},
		{"any node, verified for the address", n2.ClientConfig(""), "127.0.0.1", true},
		{"any node, verified for localhost", n2.ClientConfig(""), "localhost", true},
		{"another node's id", n2.ClientConfig("n3"), "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := handshake(t, srv, tt.cli, tt.host)
			if !tt.wantOK {
				if c.err == nil {
					t.Fatalf("client accepted n1 as %s", tt.cli.ServerName)
				}
				return
			}
			if s.err != nil || c.err != nil {
				t.Fatalf("server: %v; client: %v", s.err, c.err)
			}
			if want := (Identity{KindNode, "n2"}); s.peer != want {
				t.Errorf("server sees %s, want %s", s.peer, want)
			}
			if want := (Identity{KindNode, "n1"}); c.peer != want {
				t.Errorf("client sees %s, want %s", c.peer, want)
			}
		})
	}
}

func TestForeignAuthorityRefusedBothWays(t *testing.T) {
	ours := newCluster(t, "n1", "n2")
	theirs := newCluster(t, "n1", "n2") // same ids, another authority
	ourN1, ourN2 := mustLoad(t, ours.Node("n1")), mustLoad(t, ours.Node("n2"))
	theirN1, theirN2 := mustLoad(t, theirs.Node("n1")), mustLoad(t, theirs.Node("n2"))

	t.Run("their node calls ours", func(t *testing.T) {
		srv, err := ourN1.ServerConfig(KindNode, KindAdmin)
		if err != nil {
			t.Fatal(err)
		}
		// The client trusts our authority, so only the server can refuse.
		cli := theirN2.ClientConfig("n1")
		cli.RootCAs = ourN2.roots
		// crypto/tls offers no certificate the server's authority did not
		// sign; a hostile client offers it anyway.
		cli.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &theirN2.cert, nil }
		s, c := handshake(t, srv, cli, "127.0.0.1")
		if s.err == nil || c.err == nil {
			t.Fatalf("foreign client got through: server %v, client %v", s.err, c.err)
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(s.err, &unknown) {
			t.Errorf("server error %v, want an unknown authority", s.err)
		}
	})
	t.Run("our node calls theirs", func(t *testing.T) {
		srv, err := theirN1.ServerConfig(KindNode)
		if err != nil {
			t.Fatal(err)
		}
		_, c := handshake(t, srv, ourN2.ClientConfig("n1"), "127.0.0.1")
		var unknown x509.UnknownAuthorityError
		if !errors.As(c.err, &unknown) {
			t.Fatalf("client error %v, want an unknown authority", c.err)
		}
	})
	t.Run("a client without a certificate", func(t *testing.T) {
		srv, err := ourN1.ServerConfig(KindNode, KindAdmin)
		if err != nil {
			t.Fatal(err)
		}
		cli := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ourN2.roots, ServerName: "n1"}
		s, c := handshake(t, srv, cli, "127.0.0.1")
		if s.err == nil || c.err == nil {
			t.Fatalf("client without a certificate got through: server %v, client %v", s.err, c.err)
		}
	})
	t.Run("their certificate with our CA file", func(t *testing.T) {
		f := theirs.Node("n1")
		f.CA = ours.CACert()
		if _, err := Load(f); err == nil {
			t.Fatal("Load accepted a certificate from another authority")
		}
	})
}

func TestAdminIsAClientOnly(t *testing.T) {
	l := newCluster(t, "n1")
	n1, admin := mustLoad(t, l.Node("n1")), mustLoad(t, l.Admin())
	if admin.Identity != (Identity{KindAdmin, AdminName}) {
		t.Fatalf("admin identity %s", admin.Identity)
	}

	t.Run("accepted by a server that takes admins", func(t *testing.T) {
		srv, err := n1.ServerConfig(KindNode, KindAdmin)
		if err != nil {
			t.Fatal(err)
		}
		s, c := handshake(t, srv, admin.ClientConfig("n1"), "127.0.0.1")
		if s.err != nil || c.err != nil {
			t.Fatalf("server: %v; client: %v", s.err, c.err)
		}
		if s.peer != (Identity{KindAdmin, AdminName}) || c.peer != (Identity{KindNode, "n1"}) {
			t.Fatalf("server sees %s, client sees %s", s.peer, c.peer)
		}
	})
	t.Run("refused by a server that takes nodes only", func(t *testing.T) {
		srv, err := n1.ServerConfig(KindNode)
		if err != nil {
			t.Fatal(err)
		}
		s, c := handshake(t, srv, admin.ClientConfig("n1"), "127.0.0.1")
		if !errors.Is(s.err, ErrNotAccepted) || c.err == nil {
			t.Fatalf("server: %v; client: %v", s.err, c.err)
		}
	})
	t.Run("no server configuration", func(t *testing.T) {
		if _, err := admin.ServerConfig(KindNode); !errors.Is(err, ErrCannotServe) {
			t.Fatalf("ServerConfig: %v, want ErrCannotServe", err)
		}
	})
	t.Run("refused as a server even with the right names", func(t *testing.T) {
		// A client-only certificate that names the address dialled: only
		// the missing serverAuth usage can make the node refuse it.
		ca, err := loadIssuer(l)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ca.sign(leafRequest{
			id:  Identity{KindAdmin, AdminName},
			dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)},
		}, ca.cert.NotBefore.Add(notBeforeSlack), 1)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(p.cert, p.key)
		if err != nil {
			t.Fatal(err)
		}
		srv := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
		cli := n1.ClientConfig("")
		cli.VerifyConnection = nil // the chain check alone must refuse it
		_, c := handshake(t, srv, cli, "127.0.0.1")
		var invalid x509.CertificateInvalidError
		if !errors.As(c.err, &invalid) || invalid.Reason != x509.IncompatibleUsage {
			t.Fatalf("client error %v, want an incompatible key usage", c.err)
		}
	})
}

func TestPeerIdentityNeedsAVerifiedChain(t *testing.T) {
	l := newCluster(t, "n1")
	n1 := mustLoad(t, l.Node("n1"))
	state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{n1.cert.Leaf}}
	if _, err := PeerIdentity(state); !errors.Is(err, ErrUnverified) {
		t.Fatalf("PeerIdentity of an unverified certificate: %v", err)
	}
	state.VerifiedChains = [][]*x509.Certificate{{n1.cert.Leaf}}
	if id, err := PeerIdentity(state); err != nil || id != (Identity{KindNode, "n1"}) {
		t.Fatalf("PeerIdentity: %s, %v", id, err)
	}
}

func TestPeerNodeName(t *testing.T) {
	l := newCluster(t, "n1")
	verified := func(c *Credentials) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert.Leaf}, VerifiedChains: [][]*x509.Certificate{{c.cert.Leaf}}}
	}
	if name, err := PeerNodeName(verified(mustLoad(t, l.Node("n1")))); err != nil || name != "n1" {
		t.Fatalf("PeerNodeName of node n1: %q, %v", name, err)
	}
	if name, err := PeerNodeName(verified(mustLoad(t, l.Admin()))); err == nil || !strings.Contains(err.Error(), "peer admin/admin is not a node") {
		t.Fatalf("PeerNodeName of the admin client: %q, %v, want an error", name, err)
	}
	unverified := tls.ConnectionState{PeerCertificates: []*x509.Certificate{mustLoad(t, l.Node("n1")).cert.Leaf}}
	if name, err := PeerNodeName(unverified); !errors.Is(err, ErrUnverified) {
		t.Fatalf("PeerNodeName of an unverified certificate: %q, %v", name, err)
	}
}

func TestIdentityOf(t *testing.T) {
	l := newCluster(t, "n1")
	leaf := mustLoad(t, l.Node("n1")).cert.Leaf
	tests := []struct {
		name string
		edit func(c *x509.Certificate)
	}{
		{"no URI", func(c *x509.Certificate) { c.URIs = nil }},
		{"two URIs", func(c *x509.Certificate) { c.URIs = append(c.URIs, c.URIs[0]) }},
		{"unknown kind", func(c *x509.Certificate) { c.URIs = []*url.URL{(Identity{"ca", "n1"}).URI()} }},
		{"bad name", func(c *x509.Certificate) { c.URIs = []*url.URL{(Identity{KindNode, "N_1"}).URI()} }},
		{"common name differs", func(c *x509.Certificate) { c.Subject.CommonName = "n2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *leaf
			tt.edit(&c)
			if _, err := IdentityOf(&c); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("IdentityOf: %v, want ErrNoIdentity", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	l := newCluster(t, "n1")
	other := newCluster(t, "n1")
	bundle := t.TempDir() + "/bundle.crt"
	ca1, _ := os.ReadFile(l.CACert())
	ca2, _ := os.ReadFile(other.CACert())
	if err := os.WriteFile(bundle, append(ca1, ca2...), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    Files
		want string
	}{
		{"missing CA", Files{CA: l.Dir + "/none.crt", Cert: l.Node("n1").Cert, Key: l.Node("n1").Key}, "no such file"},
		{"node certificate as CA", Files{CA: l.Node("n1").Cert, Cert: l.Node("n1").Cert, Key: l.Node("n1").Key}, "not an authority"},
		{"two authorities", Files{CA: bundle, Cert: l.Node("n1").Cert, Key: l.Node("n1").Key}, "more than one"},
		{"key of another certificate", Files{CA: l.CACert(), Cert: l.Node("n1").Cert, Key: l.Admin().Key}, "private key does not match"},
		{"authority's own pair", Files{CA: l.CACert(), Cert: l.CACert(), Key: l.CAKey()}, "cluster identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPeerConfigServesAndDials(t *testing.T) {
	l := newCluster(t, "n1", "n2")
	n1, n2, admin := mustLoad(t, l.Node("n1")), mustLoad(t, l.Node("n2")), mustLoad(t, l.Admin())
	p1, err := n1.PeerConfig()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := n2.PeerConfig()
	if err != nil {
		t.Fatal(err)
	}
	s, c := handshake(t, p1, p2, "127.0.0.1")
	if s.err != nil || c.err != nil {
		t.Fatalf("node to node: server %v, client %v", s.err, c.err)
	}
	if s.peer != (Identity{KindNode, "n2"}) || c.peer != (Identity{KindNode, "n1"}) {
		t.Errorf("server sees %s, client sees %s", s.peer, c.peer)
	}
	if s, c := handshake(t, p1, admin.ClientConfig(""), "127.0.0.1"); s.err == nil || c.err == nil {
		t.Errorf("the admin got through a node-to-node link: server %v, client %v", s.err, c.err)
	}
	if _, err := admin.PeerConfig(); !errors.Is(err, ErrCannotServe) {
		t.Errorf("admin PeerConfig: %v, want ErrCannotServe", err)
	}
}
