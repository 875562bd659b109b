package tofu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertRequest describes a self-signed certificate to generate.
type CertRequest struct {
	// CommonName is the subject's common name: the name a client
	// certificate goes by, or the host name of a server certificate.
	// Required.
	CommonName string
	// DNSNames and IPAddresses are the subject alternative names, for a
	// server certificate. Optional.
	DNSNames    []string
	IPAddresses []net.IP
	// Days is the validity in days, at least 1.
	Days int
	// Now is the time of issue; zero means time.Now().
	Now time.Time
}

// ErrBadCertRequest is wrapped by GenerateCert's errors for an invalid
// CertRequest.
var ErrBadCertRequest = errors.New("bad certificate request")

// notBeforeSlack backdates NotBefore to tolerate clients with slow clocks.
const notBeforeSlack = time.Hour

// GenerateCert creates a self-signed certificate and its key: ECDSA P-256, a
// random 128-bit serial, valid from Now-1h to Now+Days (to the second), key
// usage DigitalSignature, extended key usages ServerAuth and ClientAuth, so
// one generator serves Gemini servers and clients. It returns the
// certificate as a "CERTIFICATE" PEM block and the key as a PKCS#8
// "PRIVATE KEY" PEM block.
func GenerateCert(req CertRequest) (certPEM, keyPEM []byte, err error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	if req.CommonName == "" {
		return nil, nil, fmt.Errorf("generate certificate: %w: empty common name", ErrBadCertRequest)
	}
	if req.Days < 1 {
		return nil, nil, fmt.Errorf("generate certificate: %w: days %d, want at least 1", ErrBadCertRequest, req.Days)
	}
	notAfter := now.AddDate(0, 0, req.Days)
	if y := notAfter.Year(); y > 9999 || !notAfter.After(now) {
		return nil, nil, fmt.Errorf("generate certificate: %w: days %d: expiry out of range", ErrBadCertRequest, req.Days)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: key: %w", err)
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             now.Add(-notBeforeSlack),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return certPEM, keyPEM, nil
}

// RandomSerial returns a random positive certificate serial number of at
// most 128 bits.
func RandomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// KeyPairPaths returns the paths WriteKeyPair and LoadOrCreateKeyPair use:
// <dir>/<name>.crt and <dir>/<name>.key. name must be a plain file name (no
// path separator, not "." or "..").
func KeyPairPaths(dir, name string) (certPath, keyPath string, err error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", "", fmt.Errorf("key pair name %s: not a plain file name", quoteShort(name))
	}
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), nil
}

// WriteKeyPair writes certPEM to <dir>/<name>.crt (mode 0644) and keyPEM to
// <dir>/<name>.key (mode 0600), creating dir with mode 0700 if missing. Each
// file is written atomically (temporary file, fsync, rename, fsync of dir).
// Both are written to temporary files before either is moved into place, so
// an I/O error leaves no partial pair. It refuses a certificate and key that
// do not belong together. Unless overwrite is true, it refuses, with an
// error wrapping fs.ErrExist and before writing anything, when either file
// already exists.
func WriteKeyPair(dir, name string, certPEM, keyPEM []byte, overwrite bool) (certPath, keyPath string, err error) {
	certPath, keyPath, err = KeyPairPaths(dir, name)
	if err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("write key pair: %s: %w", p, fs.ErrExist)
			}
		}
	}
	if err := writePair(certPath, keyPath, certPEM, keyPEM, overwrite); err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	return certPath, keyPath, nil
}

// writePair stages both files, then publishes the key and the certificate.
// If the certificate cannot be published after the key was created afresh,
// the key is removed again.
func writePair(certPath, keyPath string, certPEM, keyPEM []byte, overwrite bool) error {
	keyTmp, err := stageFile(keyPath, keyPEM, 0o600)
	if err != nil {
		return err
	}
	certTmp, err := stageFile(certPath, certPEM, 0o644)
	if err != nil {
		_ = os.Remove(keyTmp)
		return err
	}
	if err := PublishFile(keyTmp, keyPath, overwrite); err != nil {
		_ = os.Remove(keyTmp)
		_ = os.Remove(certTmp)
		return err
	}
	if err := PublishFile(certTmp, certPath, overwrite); err != nil {
		_ = os.Remove(certTmp)
		if !overwrite {
			_ = os.Remove(keyPath)
		}
		return err
	}
	return SyncDir(filepath.Dir(keyPath))
}

// LoadOrCreateKeyPair returns the key pair kept as <dir>/<name>.crt and
// <dir>/<name>.key, generating it from req and keeping it there (see
// WriteKeyPair) when neither file exists; created reports which happened.
// The node uses it when no certificate is configured. If only one of the
// two files exists it is an error: the pair is not silently replaced. A kept
// certificate is returned even if it has expired; its Leaf is set, so the
// caller can check Leaf.NotAfter.
func LoadOrCreateKeyPair(dir, name string, req CertRequest) (cert tls.Certificate, certPath, keyPath string, created bool, err error) {
	certPath, keyPath, err = KeyPairPaths(dir, name)
	if err != nil {
		return tls.Certificate{}, "", "", false, fmt.Errorf("load key pair: %w", err)
	}
	cert, err = loadPair(certPath, keyPath)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return cert, certPath, keyPath, false, err
	}
	certPEM, keyPEM, err := GenerateCert(req)
	if err != nil {
		return tls.Certificate{}, "", "", false, fmt.Errorf("create key pair: %w", err)
	}
	if _, _, err := WriteKeyPair(dir, name, certPEM, keyPEM, false); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process was quicker: use its pair
			cert, err = loadPair(certPath, keyPath)
			return cert, certPath, keyPath, false, err
		}
		return tls.Certificate{}, "", "", false, fmt.Errorf("create key pair: %w", err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", "", false, fmt.Errorf("create key pair: %w", err)
	}
	return cert, certPath, keyPath, true, nil
}

// loadPair loads a kept key pair. The error wraps fs.ErrNotExist only when
// neither file exists.
func loadPair(certPath, keyPath string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		return cert, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		_, cerr := os.Lstat(certPath)
		_, kerr := os.Lstat(keyPath)
		if cerr == nil || kerr == nil {
			return tls.Certificate{}, fmt.Errorf("load key pair: %s and %s: only one exists; remove it or supply the other", certPath, keyPath)
		}
	}
	return tls.Certificate{}, fmt.Errorf("load key pair: %w", err)
}
