package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/testlog"
)

// countingListener is a wrapped listener: the Server cannot see the
// *net.TCPListener inside, so it must take the portable accept path.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// listenOrSkip listens on addr, skipping the test where the address family
// is not available.
func listenOrSkip(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	return ln
}

// serveOn runs a Server on ln with one host, "localhost", whose every
// route answers 20 with the client address the server saw; the server is
// closed at the end of the test.
func serveOn(t testing.TB, ln net.Listener, opts ...serverOpt) *Server {
	t.Helper()
	_, certPEM, keyPEM := genPair(t, "localhost", time.Now(), 30)
	certFile, keyFile := writePair(t, t.TempDir(), "localhost", certPEM, keyPEM)
	echoAddr := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		w.WriteHeader(20, "text/plain")
		_, err := io.WriteString(w, r.RemoteAddr.String())
		return err
	})
	cfg := Config{
		Hosts: []Host{{
			Name: "localhost", CertFile: certFile, KeyFile: keyFile,
			Routes: []Route{{Prefix: "/", Handler: echoAddr}},
		}},
		Limits:             DefaultLimits(),
		CertReloadInterval: -1,
		Logger:             testlog.New(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func denying(prefixes ...string) serverOpt {
	return func(c *Config) {
		var deny []netip.Prefix
		for _, p := range prefixes {
			deny = append(deny, netip.MustParsePrefix(p))
		}
		c.Layers.Access = NewAccessList(nil, deny, true)
	}
}

// readCounter counts the bytes a client reads from the server.
type readCounter struct {
	net.Conn
	n int
}

func (c *readCounter) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n += n
	return n, err
}

// assertRefused dials addr from local, attempts a TLS handshake, and
// checks the server sent not one byte before ending the connection.
func assertRefused(t *testing.T, addr, local string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	raw, err := d.Dial("tcp", addr)
	if isConnReset(err) {
		return // reset before connect returned: refused, and nothing read
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &readCounter{Conn: raw}
	err = tls.Client(rc, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}).Handshake()
	if err == nil {
		t.Fatal("refused client completed a handshake")
	}
	if rc.n != 0 {
		t.Fatalf("refused client read %d bytes from the server", rc.n)
	}
	if !errors.Is(err, io.EOF) && !isConnReset(err) {
		t.Fatalf("refused client: %v, want EOF or reset", err)
	}
}

// TestAcceptPaths runs admission over each accept path: a plain TCP
// listener (the raw accept4 path on Linux), a wrapped listener (the
// portable path), IPv6 loopback and a dual-stack listener, whose IPv4
// clients arrive as IPv4-mapped addresses.
func TestAcceptPaths(t *testing.T) {
	tests := []struct {
		name     string
		listen   string
		wrap     bool
		dial     func(ln net.Listener) string // address clients dial
		denied   string                       // client address that is denied
		admitted string                       // client address that is not; "" for none
		deny     []string
	}{
		{name: "tcp listener", listen: "127.0.0.1:0", denied: "127.0.0.2", admitted: "127.0.0.3", deny: []string{"127.0.0.2/32"}},
		{name: "wrapped listener", listen: "127.0.0.1:0", wrap: true, denied: "127.0.0.2", admitted: "127.0.0.3", deny: []string{"127.0.0.2/32"}},
		{name: "ipv6 loopback denied", listen: "[::1]:0", denied: "::1", deny: []string{"::1/128"}},
		{name: "ipv6 loopback admitted", listen: "[::1]:0", admitted: "::1", deny: []string{"2001:db8::/32"}},
		{
			name: "dual-stack listener", listen: "[::]:0", denied: "127.0.0.2", admitted: "127.0.0.3", deny: []string{"127.0.0.2/32"},
			dial: func(ln net.Listener) string {
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listenOrSkip(t, tt.listen)
			addr := ln.Addr().String()
			if tt.dial != nil {
				addr = tt.dial(ln)
			}
			var wrapped *countingListener
			if tt.wrap {
				wrapped = &countingListener{Listener: ln}
				ln = wrapped
			}
			s := serveOn(t, ln, denying(tt.deny...))
			var accepted uint64
			if tt.denied != "" {
				assertRefused(t, addr, tt.denied)
				accepted++
				waitFor(t, "the refusal counted", func() bool { return s.Stats().RefusedAtAccept["access_denied"] == 1 })
			}
			if tt.admitted != "" {
				tc, err := client{sni: "localhost", local: tt.admitted}.dial(addr)
				if err != nil {
					t.Fatalf("admitted client: %v", err)
				}
				io.WriteString(tc, "gemini://localhost/\r\n")
				r, err := readResponse(tc)
				tc.Close()
				if err != nil || r.status != 20 {
					t.Fatalf("admitted client: %v %+v", err, r)
				}
				want := tc.LocalAddr().(*net.TCPAddr).AddrPort()
				if r.body != want.String() {
					t.Fatalf("server saw the client as %q, want %q", r.body, want)
				}
				accepted++
			}
			st := s.Stats()
			if st.Accepted != accepted {
				t.Errorf("accepted = %d, want %d", st.Accepted, accepted)
			}
			if tt.admitted == "" && st.Handshakes+st.HandshakeFailed != 0 {
				t.Errorf("a handshake was attempted for a refused client: %+v", st)
			}
			if wrapped != nil && wrapped.accepts.Load() != int64(accepted) {
				t.Errorf("wrapped Accept called %d times, want %d: the portable path was not used", wrapped.accepts.Load(), accepted)
			}
		})
	}
}

// TestCloseEndsAcceptLoop checks that Close ends the accept loop, whether
// it is waiting for clients or refused clients keep arriving, and that the
// listening socket is gone when Close returns.
func TestCloseEndsAcceptLoop(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		for _, flood := range []bool{false, true} {
			name := map[bool]string{false: "tcp listener", true: "wrapped listener"}[wrap] +
				map[bool]string{false: ", quiet", true: ", during a refusal flood"}[flood]
			t.Run(name, func(t *testing.T) {
				var ln net.Listener = listenOrSkip(t, "127.0.0.1:0")
				if wrap {
					ln = &countingListener{Listener: ln}
				}
				addr := ln.Addr().String()
				s := serveOn(t, ln, denying("127.0.0.2/32"))
				// One refusal first: the loop is running, then waits.
				assertRefused(t, addr, "127.0.0.2")
				waitFor(t, "the refusal counted", func() bool { return s.Stats().RefusedAtAccept["access_denied"] == 1 })
				if flood {
					stop := startRefusalFlood(addr, "127.0.0.2")
					defer stop()
					waitFor(t, "100 refusals", func() bool { return s.Stats().RefusedAtAccept["access_denied"] >= 100 })
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := s.Close(ctx); err != nil {
					t.Fatalf("close: %v", err)
				}
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Fatal("still listening after Close")
				}
			})
		}
	}
}

// startRefusalFlood dials addr from local over and over on 8 goroutines
// until the returned stop is called.
func startRefusalFlood(addr, local string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			for {
				select {
				case <-done:
					return
				default:
				}
				if c, err := d.Dial("tcp", addr); err == nil {
					c.Close()
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
