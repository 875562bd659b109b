// Package tofutest makes self-signed certificates for tests. Every
// certificate comes from tofu.GenerateCert, the generator the node uses, so
// the tests of every package exercise the certificates users get.
package tofutest

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/chimalli/chimalli/tofu"
)

// DefaultDays is the validity of a certificate whose request leaves Days
// zero.
const DefaultDays = 30

// KeyPair generates a certificate for req with tofu.GenerateCert (Days
// zero means DefaultDays) and returns it as a key pair with Leaf set,
// together with its PEM blocks. It fails the test on any error.
func KeyPair(t testing.TB, req tofu.CertRequest) (pair tls.Certificate, certPEM, keyPEM []byte) {
	t.Helper()
	if req.Days == 0 {
		req.Days = DefaultDays
	}
	certPEM, keyPEM, err := tofu.GenerateCert(req)
	if err != nil {
		t.Fatalf("generate test certificate: %v", err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("load test certificate: %v", err)
	}
	return pair, certPEM, keyPEM
}

// Loopback is the request for a certificate named cn that a client may
// check against any loopback name of a test server: DNS names cn (unless it
// is an IP address) and localhost, IP addresses 127.0.0.1 and ::1.
func Loopback(cn string) tofu.CertRequest {
	dns := []string{"localhost"}
	if cn != "localhost" && net.ParseIP(cn) == nil {
		dns = append(dns, cn)
	}
	return tofu.CertRequest{
		CommonName:  cn,
		DNSNames:    dns,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
}

// LoopbackCert returns a fresh key pair for Loopback(cn), with Leaf set.
func LoopbackCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	pair, _, _ := KeyPair(t, Loopback(cn))
	return pair
}

// WriteKeyPair generates a certificate for req (see KeyPair) and keeps it
// with tofu.WriteKeyPair in a new t.TempDir() as name.crt (0644) and
// name.key (0600). It returns the two paths.
func WriteKeyPair(t testing.TB, name string, req tofu.CertRequest) (certPath, keyPath string) {
	t.Helper()
	_, certPEM, keyPEM := KeyPair(t, req)
	certPath, keyPath, err := tofu.WriteKeyPair(t.TempDir(), name, certPEM, keyPEM, false)
	if err != nil {
		t.Fatalf("write test certificate: %v", err)
	}
	return certPath, keyPath
}
