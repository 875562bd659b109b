package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certSource holds a host's certificate and reloads it from its files when
// they change. Handshakes read the current certificate through an atomic
// pointer, so a reload never blocks or drops a connection; a reload that
// fails keeps the previous certificate.
type certSource struct {
	certFile, keyFile string

	mu      sync.Mutex // serialises reloads
	stamp   fileStamp  // of the files behind cur
	current atomic.Pointer[tls.Certificate]
}

type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func newCertSource(certFile, keyFile string) (*certSource, error) {
	c := &certSource{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(true); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certSource) get() *tls.Certificate { return c.current.Load() }

// reload loads the files if they changed since the last load (or always,
// with force). It reports whether a new certificate is now in use.
func (c *certSource) reload(force bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := stampOf(c.certFile, c.keyFile)
	if err != nil {
		return false, err
	}
	if !force && st == c.stamp {
		return false, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return false, fmt.Errorf("load certificate %s: %w", c.certFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return false, fmt.Errorf("parse certificate %s: %w", c.certFile, err)
		}
	}
	c.current.Store(&cert)
	c.stamp = st
	return true, nil
}

func stampOf(certFile, keyFile string) (fileStamp, error) {
	ci, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("stat certificate: %w", err)
	}
	ki, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("stat key: %w", err)
	}
	return fileStamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}
