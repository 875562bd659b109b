package bench

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// handler answers one request on a test server; n counts requests from 0.
// The server closes the connection (with close_notify) when it returns.
type handler func(n int64, req string, tc *tls.Conn, raw net.Conn)

// reply returns a handler that writes resp.
func reply(resp string) handler {
	return func(_ int64, _ string, tc *tls.Conn, _ net.Conn) { _, _ = io.WriteString(tc, resp) }
}

// testServer is a tiny Gemini server on 127.0.0.1 that counts what it sees.
type testServer struct {
	ln         net.Listener
	addr       string
	served     atomic.Int64 // request lines read
	handshakes atomic.Int64
	resumed    atomic.Int64
	clientCert atomic.Int64 // handshakes with a client certificate
	wg         sync.WaitGroup
}

// url returns a gemini URL on the server with path p.
func (s *testServer) url(p string) string { return "gemini://" + s.addr + p }

// startServer serves Gemini with cfg until the test ends.
func startServer(t testing.TB, cfg *tls.Config, h handler) *testServer {
	t.Helper()
	return startRaw(t, func(s *testServer, raw net.Conn) { s.serveGemini(raw, cfg, h) })
}

// startRaw serves every connection with fn until the test ends.
func startRaw(t testing.TB, fn func(*testServer, net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, addr: ln.Addr().String()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				fn(s, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) serveGemini(raw net.Conn, cfg *tls.Config, h handler) {
	tc := tls.Server(raw, cfg)
	if err := tc.Handshake(); err != nil {
		return
	}
	st := tc.ConnectionState()
	s.handshakes.Add(1)
	if st.DidResume {
		s.resumed.Add(1)
	}
	if len(st.PeerCertificates) > 0 {
		s.clientCert.Add(1)
	}
	line, err := bufio.NewReaderSize(tc, 1100).ReadSlice('\n')
	if err != nil {
		return
	}
	n := s.served.Add(1) - 1
	h(n, strings.TrimSuffix(string(line), "\r\n"), tc, raw)
	_ = tc.Close()
}

// serverConfig is a TLS configuration with one certificate.
func serverConfig(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{genCert(t, "bench-test")}, MinVersion: tls.VersionTLS12}
}

// genCert makes a self-signed ECDSA P-256 certificate for 127.0.0.1, ::1
// and localhost.
func genCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := genCertPEM(t, cn)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func genCertPEM(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeCertFiles writes a client certificate and key into a temporary
// directory and returns their paths.
func writeCertFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	c, k := genCertPEM(t, "bench-client")
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
