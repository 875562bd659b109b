package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrCannotServe is wrapped by ServerConfig's error for credentials whose
// certificate may not authenticate a server (the admin's).
var ErrCannotServe = errors.New("certificate is not for servers")

// ErrNotAccepted is wrapped by the handshake error when a verified peer is
// of a kind, or has a name, that the configuration does not accept.
var ErrNotAccepted = errors.New("peer not accepted")

// Credentials are one identity's certificate and key and the cluster
// authority it trusts.
type Credentials struct {
	// Identity is what the certificate names.
	Identity Identity
	cert     tls.Certificate
	roots    *x509.CertPool
	canServe bool
}

// Load reads an identity's files and checks them: the CA file holds one
// authority certificate, the key belongs to the certificate, and the
// certificate is signed by that authority, valid now and carries a cluster
// identity.
func Load(f Files) (*Credentials, error) {
	ca, err := readCACert(f.CA)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load credentials: %s: %w", f.Cert, err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("load credentials: %s: %w", f.Cert, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %s: %w", f.Cert, err)
	}
	return &Credentials{
		Identity: id,
		cert:     cert,
		roots:    roots,
		canServe: slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth),
	}, nil
}

// ServerConfig returns the TLS configuration of a server that accepts
// clients of the given kinds from the cluster: TLS 1.3 at least, a client
// certificate required and verified against the cluster authority, and the
// peer's kind checked. Use PeerIdentity on the connection to learn who the
// client is. It is an error to accept no kind, or to serve with a
// certificate that is not for servers (ErrCannotServe).
func (c *Credentials) ServerConfig(accept ...Kind) (*tls.Config, error) {
	if !c.canServe {
		return nil, fmt.Errorf("server config: %s: %w", c.Identity, ErrCannotServe)
	}
	if len(accept) == 0 {
		return nil, errors.New("server config: no kind of client accepted")
	}
	accept = slices.Clone(accept)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := PeerIdentity(cs)
			if err != nil {
				return err
			}
			if !slices.Contains(accept, id.Kind) {
				return fmt.Errorf("client %s: %w", id, ErrNotAccepted)
			}
			return nil
		},
	}, nil
}

// PeerConfig returns the TLS configuration of a link between nodes where
// either end may dial and one configuration serves both ends, as NATS
// routes do: ServerConfig(KindNode) that also trusts the cluster authority
// as roots, so the dialling end verifies the node it reached for the host
// it dialled (the caller of crypto/tls sets ServerName) and checks that it
// is a node. The admin's credentials cannot make one (ErrCannotServe).
func (c *Credentials) PeerConfig() (*tls.Config, error) {
	cfg, err := c.ServerConfig(KindNode)
	if err != nil {
		return nil, fmt.Errorf("peer config: %w", err)
	}
	cfg.RootCAs = c.roots
	return cfg, nil
}

// ClientConfig returns the TLS configuration of a client that calls node
// server: TLS 1.3 at least, this identity's certificate offered, and the
// server's certificate verified against the cluster authority, for the DNS
// name server, and checked to say node/<server>. With server empty, any node
// of the cluster is accepted and the certificate is verified for the host
// of the address dialled (crypto/tls fills in ServerName from it), which
// must then be one of the node's names or addresses.
func (c *Credentials) ClientConfig(server string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		RootCAs:      c.roots,
		ServerName:   server,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := PeerIdentity(cs)
			if err != nil {
				return err
			}
			if id.Kind != KindNode || (server != "" && id.Name != server) {
				return fmt.Errorf("server %s: %w", id, ErrNotAccepted)
			}
			return nil
		},
	}
}

// readCACert reads a PEM file that holds exactly one authority certificate.
func readCACert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("%s: more than one PEM block; want the cluster authority alone", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not an authority certificate", path)
	}
	return cert, nil
}

// loadIssuer reads the authority of a layout and checks that its key
// belongs to its certificate.
func loadIssuer(l *Layout) (*issuer, error) {
	cert, err := readCACert(l.CACert())
	if err != nil {
		return nil, fmt.Errorf("cluster authority: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(l.CACert(), l.CAKey())
	if err != nil {
		return nil, fmt.Errorf("cluster authority: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("cluster authority: %s: key cannot sign", l.CAKey())
	}
	return &issuer{cert: cert, key: signer}, nil
}
