package tofu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strconv"
	"testing"
	"time"
)

// testIdentity returns a distinct, non-zero identity for each n.
func testIdentity(n int) Identity {
	return Identity{
		Cert: sha256.Sum256([]byte("cert " + strconv.Itoa(n))),
		SPKI: sha256.Sum256([]byte("spki " + strconv.Itoa(n))),
	}
}

// testTime is a fixed instant with nanoseconds, to catch precision loss.
var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// testPin returns a valid pin for key held by identity n.
func testPin(key PinKey, n int) Pin {
	return Pin{
		Key:      key,
		Identity: testIdentity(n),
		Created:  testTime.Add(time.Duration(n) * time.Second),
		NotAfter: testTime.AddDate(1, 0, 0),
	}
}

// newKey returns a fresh ECDSA P-256 key.
func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSigned returns a self-signed certificate for key; serial tells two
// certificates of the same key apart (a renewal).
func selfSigned(t testing.TB, key *ecdsa.PrivateKey, cn string, serial int64) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    testTime.Add(-time.Hour),
		NotAfter:     testTime.AddDate(0, 0, serial2days(serial)),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serial2days gives each serial its own validity, so renewals differ.
func serial2days(serial int64) int { return 30 + int(serial%300) }
