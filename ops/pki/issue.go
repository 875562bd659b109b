package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

const (
	// DefaultCADays is the validity of a new cluster authority: ten years,
	// so that the authority outlives several generations of node
	// certificates.
	DefaultCADays = 3650
	// DefaultCertDays is the validity of node and admin certificates: three
	// years. There is no automatic renewal and no revocation list yet, so a
	// certificate's end of life is the backstop against a lost key; three
	// years keeps that bounded without making manual renewal a routine chore.
	DefaultCertDays = 3 * 365
	// notBeforeSlack backdates NotBefore to tolerate peers with slow clocks.
	notBeforeSlack = time.Hour
)

// issuer is a cluster authority that can sign certificates.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// pemPair is a certificate and its key, PEM encoded.
type pemPair struct {
	cert, key []byte
}

// newCA creates a self-signed cluster authority valid for days from now.
// Its common name carries a random tag, so that two clusters' authorities
// can be told apart.
func newCA(now time.Time, days int) (*issuer, pemPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, pemPair{}, fmt.Errorf("ca key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, pemPair{}, err
	}
	notAfter, err := expiry(now, days)
	if err != nil {
		return nil, pemPair{}, err
	}
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return nil, pemPair{}, fmt.Errorf("ca tag: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Chimalli cluster CA " + hex.EncodeToString(tag)},
		NotBefore:             now.Add(-notBeforeSlack),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, pemPair{}, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, pemPair{}, fmt.Errorf("ca certificate: %w", err)
	}
	pair, err := encodePair(der, key)
	if err != nil {
		return nil, pemPair{}, err
	}
	return &issuer{cert: cert, key: key}, pair, nil
}

// leafRequest describes a certificate for a node or the admin.
type leafRequest struct {
	id  Identity
	dns []string
	ips []net.IP
}

// sign issues a certificate for req, valid for days from now but no longer
// than the authority itself.
func (ca *issuer) sign(req leafRequest, now time.Time, days int) (pemPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pemPair{}, fmt.Errorf("%s key: %w", req.id, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return pemPair{}, err
	}
	notAfter, err := expiry(now, days)
	if err != nil {
		return pemPair{}, err
	}
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !notAfter.After(now) {
		return pemPair{}, fmt.Errorf("%s: the cluster authority expired on %s", req.id, ca.cert.NotAfter.UTC().Format(time.DateOnly))
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if req.id.Kind == KindNode {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.id.Name},
		NotBefore:             now.Add(-notBeforeSlack),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              req.dns,
		IPAddresses:           req.ips,
		URIs:                  []*url.URL{req.id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return pemPair{}, fmt.Errorf("%s certificate: %w", req.id, err)
	}
	return encodePair(der, key)
}

// encodePair PEM-encodes a certificate and its key (PKCS#8).
func encodePair(der []byte, key *ecdsa.PrivateKey) (pemPair, error) {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return pemPair{}, fmt.Errorf("marshal key: %w", err)
	}
	return pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

// issueTime returns the time certificates are issued at: now, or the
// current time when now is zero, in UTC to the second.
func issueTime(now time.Time) time.Time {
	if now.IsZero() {
		now = time.Now()
	}
	return now.UTC().Truncate(time.Second)
}

// expiry returns now plus days, checking that the result is representable.
func expiry(now time.Time, days int) (time.Time, error) {
	if days < 1 {
		return time.Time{}, fmt.Errorf("validity %d days: want at least 1", days)
	}
	notAfter := now.AddDate(0, 0, days)
	if notAfter.Year() > 9999 || !notAfter.After(now) {
		return time.Time{}, fmt.Errorf("validity %d days: expiry out of range", days)
	}
	return notAfter, nil
}

// randomSerial returns a random positive serial number of at most 128
// bits: tofu's, the one every certificate the project makes gets.
func randomSerial() (*big.Int, error) {
	n, err := tofu.RandomSerial()
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n, nil
}
