package tofu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// parsePair decodes GenerateCert's output, failing on any deviation from
// the promised encoding.
func parsePair(t *testing.T, certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	cb, rest := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("certificate PEM is not one CERTIFICATE block: %q", certPEM)
	}
	kb, rest := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key PEM is not one PRIVATE KEY block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatalf("key is not PKCS#8: %v", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key is %T, want ECDSA", k)
	}
	return cert, key
}

func TestGenerateCert(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 30, 45, 999, time.FixedZone("x", 7200))
	tests := []struct {
		name string
		req  CertRequest
	}{
		{"client", CertRequest{CommonName: "alice", Days: 365, Now: now}},
		{"one day", CertRequest{CommonName: "bob", Days: 1, Now: now}},
		{"server", CertRequest{CommonName: "example.org", DNSNames: []string{"example.org", "localhost"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, Days: 3650, Now: now}},
	}
	var serials []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := GenerateCert(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			cert, key := parsePair(t, certPEM, keyPEM)
			pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Fatalf("public key is %T, want ECDSA P-256", cert.PublicKey)
			}
			if !key.PublicKey.Equal(pub) {
				t.Fatal("key does not belong to the certificate")
			}
			if cert.Subject.CommonName != tt.req.CommonName {
				t.Fatalf("CN = %q", cert.Subject.CommonName)
			}
			base := time.Date(2025, 6, 1, 10, 30, 45, 0, time.UTC)
			if want := base.Add(-time.Hour); !cert.NotBefore.Equal(want) {
				t.Fatalf("NotBefore = %v, want %v", cert.NotBefore, want)
			}
			if want := base.AddDate(0, 0, tt.req.Days); !cert.NotAfter.Equal(want) {
				t.Fatalf("NotAfter = %v, want %v", cert.NotAfter, want)
			}
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
				t.Fatalf("serial %v is not a positive 128-bit number", cert.SerialNumber)
			}
			serials = append(serials, cert.SerialNumber.String())
			if cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Fatalf("KeyUsage = %v", cert.KeyUsage)
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(cert.ExtKeyUsage, want) {
				t.Fatalf("ExtKeyUsage = %v, want %v", cert.ExtKeyUsage, want)
			}
			if cert.IsCA {
				t.Fatal("certificate is a CA")
			}
			// CheckSignatureFrom would insist on a CA; a self-signed leaf
			// is its own issuer and verifies with its own key.
			if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
				t.Fatal("issuer is not the subject")
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
				t.Fatalf("not self-signed: %v", err)
			}
			if !slices.Equal(cert.DNSNames, tt.req.DNSNames) || len(cert.IPAddresses) != len(tt.req.IPAddresses) {
				t.Fatalf("SANs = %v %v", cert.DNSNames, cert.IPAddresses)
			}
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Fatal(err)
			}
		})
	}
	slices.Sort(serials)
	if len(slices.Compact(serials)) != len(tests) {
		t.Fatalf("serials repeat: %v", serials)
	}
}

func TestGenerateCertDefaultsNow(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	certPEM, keyPEM, err := GenerateCert(CertRequest{CommonName: "now", Days: 2})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := parsePair(t, certPEM, keyPEM)
	issued := cert.NotBefore.Add(time.Hour)
	if issued.Before(before) || issued.After(after) {
		t.Fatalf("issued at %v, not between %v and %v", issued, before, after)
	}
	if !cert.NotAfter.Equal(issued.AddDate(0, 0, 2)) {
		t.Fatalf("NotAfter = %v, want issue time + 2 days", cert.NotAfter)
	}
}

func TestGenerateCertInvalid(t *testing.T) {
	tests := []struct {
		name string
		req  CertRequest
	}{
		{"zero days", CertRequest{CommonName: "a", Days: 0}},
		{"negative days", CertRequest{CommonName: "a", Days: -1}},
		{"past year 9999", CertRequest{CommonName: "a", Days: 3_000_000}},
		{"overflowing days", CertRequest{CommonName: "a", Days: int(^uint(0) >> 1)}},
		{"no common name", CertRequest{Days: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := GenerateCert(tt.req); !errors.Is(err, ErrBadCertRequest) {
				t.Fatalf("GenerateCert error = %v, want ErrBadCertRequest", err)
			}
		})
	}
}

// genPair generates a key pair for cn or fails the test.
func genPair(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := GenerateCert(CertRequest{CommonName: cn, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// checkFile fails unless path holds data with permission bits mode.
func checkFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s holds other data", path)
	}
	checkMode(t, path, mode)
}

func TestWriteKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	c1, k1 := genPair(t, "one")
	c2, k2 := genPair(t, "two")

	certPath, keyPath, err := WriteKeyPair(dir, "alice", c1, k1, false)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "alice.crt") || keyPath != filepath.Join(dir, "alice.key") {
		t.Fatalf("paths = %q, %q", certPath, keyPath)
	}
	checkMode(t, dir, 0o700)
	checkFile(t, certPath, c1, 0o644)
	checkFile(t, keyPath, k1, 0o600)
	checkDirHolds(t, dir, "alice.crt", "alice.key")

	if _, _, err := WriteKeyPair(dir, "alice", c2, k2, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteKeyPair = %v, want fs.ErrExist", err)
	}
	checkFile(t, certPath, c1, 0o644)
	checkFile(t, keyPath, k1, 0o600)

	// Only the key exists: still refused, nothing written.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteKeyPair(dir, "alice", c2, k2, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteKeyPair over a lone key = %v, want fs.ErrExist", err)
	}
	checkDirHolds(t, dir, "alice.key")

	if _, _, err := WriteKeyPair(dir, "alice", c2, k2, true); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	checkFile(t, certPath, c2, 0o644)
	checkFile(t, keyPath, k2, 0o600)
	checkDirHolds(t, dir, "alice.crt", "alice.key")
}

func TestWriteKeyPairRefuses(t *testing.T) {
	c1, k1 := genPair(t, "one")
	_, k2 := genPair(t, "two")
	tests := []struct {
		name    string
		fname   string
		certPEM []byte
		keyPEM  []byte
	}{
		{"mismatched pair", "x", c1, k2},
		{"not PEM", "x", []byte("junk"), k1},
		{"empty name", "", c1, k1},
		{"dot dot", "..", c1, k1},
		{"slash", "a/b", c1, k1},
		{"backslash", `a\b`, c1, k1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := WriteKeyPair(dir, tt.fname, tt.certPEM, tt.keyPEM, true); err == nil {
				t.Fatal("WriteKeyPair succeeded")
			}
			checkDirHolds(t, dir)
		})
	}
}

func TestWriteKeyPairFailsCleanly(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, k := genPair(t, "x")
	if _, _, err := WriteKeyPair(filepath.Join(file, "certs"), "x", c, k, false); err == nil {
		t.Fatal("WriteKeyPair under a file succeeded")
	}
	checkDirHolds(t, parent, "file")
}

func TestLoadOrCreateKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	req := CertRequest{CommonName: "localhost", DNSNames: []string{"localhost"}, Days: 365}

	first, certPath, keyPath, created, err := LoadOrCreateKeyPair(dir, "gemini", req)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("first call did not create the pair")
	}
	if first.Leaf == nil || first.Leaf.Subject.CommonName != "localhost" {
		t.Fatalf("Leaf = %v", first.Leaf)
	}
	checkMode(t, keyPath, 0o600)
	checkMode(t, certPath, 0o644)

	second, certPath2, keyPath2, created, err := LoadOrCreateKeyPair(dir, "gemini", req)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("second call created a new pair")
	}
	if certPath2 != certPath || keyPath2 != keyPath {
		t.Fatalf("paths changed: %q %q", certPath2, keyPath2)
	}
	if !bytes.Equal(second.Certificate[0], first.Certificate[0]) {
		t.Fatal("second call loaded another certificate")
	}
	if second.Leaf == nil || IdentityOf(second.Leaf) != IdentityOf(first.Leaf) {
		t.Fatal("second call's Leaf differs")
	}
	checkDirHolds(t, dir, "gemini.crt", "gemini.key")

	// A lone key is not silently replaced.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	keyBefore, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := LoadOrCreateKeyPair(dir, "gemini", req); err == nil {
		t.Fatal("LoadOrCreateKeyPair with a lone key succeeded")
	}
	checkFile(t, keyPath, keyBefore, 0o600)
}

func TestLoadOrCreateKeyPairErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   string
		req  CertRequest
	}{
		{"bad name", "../x", CertRequest{CommonName: "a", Days: 1}},
		{"bad request", "x", CertRequest{CommonName: "a", Days: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, _, _, err := LoadOrCreateKeyPair(dir, tt.fn, tt.req); err == nil {
				t.Fatal("LoadOrCreateKeyPair succeeded")
			}
			checkDirHolds(t, dir)
		})
	}
}

// TestGeneratedCertsHandshake runs a real TLS 1.3 handshake on loopback
// with a generated server certificate and a generated client certificate,
// as a Gemini server and client would, and checks the server sees the
// client's identity.
func TestGeneratedCertsHandshake(t *testing.T) {
	dir := t.TempDir()
	srvCert, _, _, _, err := LoadOrCreateKeyPair(dir, "server", CertRequest{CommonName: "localhost", DNSNames: []string{"localhost"}, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	cliCert, _, _, _, err := LoadOrCreateKeyPair(dir, "client", CertRequest{CommonName: "alice", Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan Identity, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- Identity{}
			return
		}
		defer c.Close()
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
		if err := tc.Handshake(); err != nil || len(tc.ConnectionState().PeerCertificates) == 0 {
			seen <- Identity{}
			return
		}
		seen <- IdentityOf(tc.ConnectionState().PeerCertificates[0])
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates:       []tls.Certificate{cliCert},
		InsecureSkipVerify: true, // TOFU: the identity is checked below
		MinVersion:         tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := IdentityOf(c.ConnectionState().PeerCertificates[0]); got != IdentityOf(srvCert.Leaf) {
		t.Fatal("client sees another server identity")
	}
	if got := <-seen; got != IdentityOf(cliCert.Leaf) {
		t.Fatal("server does not see the client's identity")
	}
}
