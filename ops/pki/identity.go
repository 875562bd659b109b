package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Kind is what holds a cluster certificate.
type Kind string

const (
	// KindNode is a cluster node: it serves and calls other nodes.
	KindNode Kind = "node"
	// KindAdmin is an operator's client: it calls nodes, never serves.
	KindAdmin Kind = "admin"
)

// URIScheme is the scheme of the URI subject alternative name that carries
// a holder's identity: chimalli://<kind>/<name>.
const URIScheme = "chimalli"

// AdminName is the name of the admin identity Init creates.
const AdminName = "admin"

// Identity is the holder of a cluster certificate.
type Identity struct {
	Kind Kind
	Name string
}

// String returns kind/name, for example node/n1.
func (id Identity) String() string { return string(id.Kind) + "/" + id.Name }

// URI returns the identity's URI subject alternative name,
// chimalli://<kind>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: URIScheme, Host: string(id.Kind), Path: "/" + id.Name}
}

// ErrBadName is wrapped by the errors for a node id or name that is not a
// DNS label: 1 to 63 characters of a-z, 0-9 and '-', not starting or ending
// with '-'.
var ErrBadName = errors.New("not a valid name")

// ErrUnverified is wrapped by PeerIdentity's error when the connection has no
// verified certificate chain: the peer sent no certificate, or the TLS
// configuration did not verify it.
var ErrUnverified = errors.New("peer certificate not verified")

// ErrNoIdentity is wrapped by the errors for a certificate that does not
// carry exactly one well-formed chimalli:// identity matching its common
// name.
var ErrNoIdentity = errors.New("certificate carries no cluster identity")

// labelRE is a DNS label in lower case.
var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateName checks that name can be a node id or identity name: a DNS
// label (node ids double as host names, for example compose service names).
// The error wraps ErrBadName.
func ValidateName(name string) error {
	if labelRE.MatchString(name) {
		return nil
	}
	switch {
	case name == "":
		return fmt.Errorf("empty name: %w", ErrBadName)
	case len(name) > 63:
		return fmt.Errorf("name %.20q…: %w: longer than 63 characters", name, ErrBadName)
	case strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-"):
		return fmt.Errorf("name %q: %w: starts or ends with '-'", name, ErrBadName)
	}
	return fmt.Errorf("name %q: %w: use only a-z, 0-9 and '-'", name, ErrBadName)
}

// PeerIdentity returns the identity of the peer of a TLS connection, read
// from the leaf of its first verified chain. It trusts that the chain was
// verified against the cluster authority, as the configurations of
// Credentials do; a connection without a verified chain is an error wrapping
// ErrUnverified.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("peer identity: %w", ErrUnverified)
	}
	id, err := IdentityOf(cs.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, fmt.Errorf("peer identity: %w", err)
	}
	return id, nil
}

// PeerNodeName returns the node id of the peer of a TLS connection, as
// PeerIdentity reads it: how a cluster node names the peer on the other
// end of a connection. A verified identity that is not a node's (the admin
// client's) is an error.
func PeerNodeName(cs tls.ConnectionState) (string, error) {
	id, err := PeerIdentity(cs)
	if err != nil {
		return "", err
	}
	if id.Kind != KindNode {
		return "", fmt.Errorf("peer %s is not a node", id)
	}
	return id.Name, nil
}

// IdentityOf returns the identity a certificate carries: its one chimalli://
// URI subject alternative name, whose name must equal the common name. It
// does not verify the certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w: %d chimalli:// names, want 1", ErrNoIdentity, len(found))
	}
	u := found[0]
	kind := Kind(u.Host)
	if kind != KindNode && kind != KindAdmin {
		return Identity{}, fmt.Errorf("%w: unknown kind %q", ErrNoIdentity, u.Host)
	}
	name, ok := strings.CutPrefix(u.Path, "/")
	if !ok || ValidateName(name) != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Identity{}, fmt.Errorf("%w: malformed %q", ErrNoIdentity, u.String())
	}
	if cert.Subject.CommonName != name {
		return Identity{}, fmt.Errorf("%w: common name %q differs from %q", ErrNoIdentity, cert.Subject.CommonName, u.String())
	}
	return Identity{Kind: kind, Name: name}, nil
}
