package bench

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu/tofutest"
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
	return &tls.Config{Certificates: []tls.Certificate{tofutest.LoopbackCert(t, "bench-test")}, MinVersion: tls.VersionTLS12}
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
