package pki

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// newCluster initialises a cluster of nodes in a fresh temporary directory.
func newCluster(t *testing.T, nodes ...string) *Layout {
	t.Helper()
	l, err := Init(t.TempDir()+"/certs", InitOptions{Nodes: nodes})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return l
}

// mustLoad loads one identity's credentials.
func mustLoad(t *testing.T, f Files) *Credentials {
	t.Helper()
	c, err := Load(f)
	if err != nil {
		t.Fatalf("Load %s: %v", f.Cert, err)
	}
	return c
}

// result is one side's view of a handshake: the peer's identity or an error.
type result struct {
	peer Identity
	err  error
}

// ioGuard bounds each side's I/O so that a broken test fails instead of
// hanging; no assertion depends on it.
const ioGuard = 30 * time.Second

// handshake serves one connection with srv on a loopback port, dials it with
// cli at host, and returns what each side saw. The server writes one byte
// after a handshake it accepts; the client reads it, so a client that
// finished its half of a TLS 1.3 handshake still learns that the server
// refused it.
func handshake(t *testing.T, srv, cli *tls.Config, host string) (server, client result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		_ = c.SetDeadline(time.Now().Add(ioGuard))
		tc := tls.Server(c, srv)
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		id, err := PeerIdentity(tc.ConnectionState())
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- result{peer: id, err: err}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	client = dialAndRead(cli, net.JoinHostPort(host, port))
	server = <-done
	t.Logf("server: %s, %v; client: %s, %v", server.peer, server.err, client.peer, client.err)
	return server, client
}

func dialAndRead(cli *tls.Config, addr string) result {
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: ioGuard}, "tcp", addr, cli)
	if err != nil {
		return result{err: err}
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(ioGuard))
	if _, err := tc.Read(make([]byte, 1)); err != nil {
		return result{err: err}
	}
	id, err := PeerIdentity(tc.ConnectionState())
	return result{peer: id, err: err}
}
