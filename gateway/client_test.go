package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

// upstreamConn is what a test upstream saw on one connection.
type upstreamConn struct {
	line       string            // request line without CRLF; "" when none arrived
	sni        string            // TLS server name
	clientCert *x509.Certificate // client certificate, if any
	err        error             // handshake or read error
	resumed    bool              // the TLS session was resumed
}

// testUpstream is a small Gemini (or plain TCP) server on loopback. serve
// handles each connection after the request line was read; it gets the
// buffered reader for any request body.
type testUpstream struct {
	addr  string
	port  int
	cert  atomic.Pointer[tls.Certificate]
	seen  chan upstreamConn
	done  chan struct{} // closed at cleanup: handlers blocking on it return
	ln    net.Listener
	wg    sync.WaitGroup
	serve func(c net.Conn, br *bufio.Reader, line string)
	raw   func(c net.Conn) // when set, replaces TLS + line reading entirely
	tls   *tls.Config      // shared by every connection, so sessions can resume
}

// startUpstream starts a TLS Gemini upstream presenting cert. Each
// connection's request line is reported on u.seen.
func startUpstream(t *testing.T, cert tls.Certificate, serve func(c net.Conn, br *bufio.Reader, line string)) *testUpstream {
	t.Helper()
	u := newTestUpstream(t)
	u.cert.Store(&cert)
	u.serve = serve
	u.run(t)
	return u
}

// startRawUpstream starts a plain TCP listener whose connections are all
// handed to raw.
func startRawUpstream(t *testing.T, raw func(c net.Conn)) *testUpstream {
	t.Helper()
	u := newTestUpstream(t)
	u.raw = raw
	u.run(t)
	return u
}

func newTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{
		addr: ln.Addr().String(),
		port: ln.Addr().(*net.TCPAddr).Port,
		seen: make(chan upstreamConn, 64),
		done: make(chan struct{}),
		ln:   ln,
	}
	u.tls = &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return u.cert.Load(), nil
		},
	}
	return u
}

func (u *testUpstream) run(t *testing.T) {
	t.Cleanup(func() {
		close(u.done)
		u.ln.Close()
		u.wg.Wait()
	})
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := u.ln.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				// Unblock handlers at cleanup.
				stop := context.AfterFunc(doneContext(u.done), func() { c.SetDeadline(time.Unix(1, 0)) })
				defer stop()
				if u.raw != nil {
					u.raw(c)
					return
				}
				u.handle(c)
			}()
		}
	}()
}

func (u *testUpstream) handle(raw net.Conn) {
	tc := tls.Server(raw, u.tls)
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		u.seen <- upstreamConn{err: err}
		return
	}
	cs := tc.ConnectionState()
	seen := upstreamConn{sni: cs.ServerName, resumed: cs.DidResume}
	if len(cs.PeerCertificates) > 0 {
		seen.clientCert = cs.PeerCertificates[0]
	}
	br := bufio.NewReader(tc)
	line, err := br.ReadString('\n')
	if err != nil {
		seen.err = err
		u.seen <- seen
		return
	}
	seen.line = strings.TrimSuffix(line, "\r\n")
	u.seen <- seen
	raw.SetDeadline(time.Time{})
	if u.serve != nil {
		u.serve(tc, br, seen.line)
	}
}

// next waits for the upstream's report on its next connection.
func (u *testUpstream) next(t *testing.T) upstreamConn {
	t.Helper()
	select {
	case s := <-u.seen:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("upstream saw no connection")
		return upstreamConn{}
	}
}

// doneContext returns a context cancelled when done is closed.
func doneContext(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-done
		cancel()
	}()
	return ctx
}

// answer returns a serve function writing resp verbatim.
func answer(resp string) func(net.Conn, *bufio.Reader, string) {
	return func(c net.Conn, _ *bufio.Reader, _ string) { io.WriteString(c, resp) }
}

func TestClientTOFU(t *testing.T) {
	cert1, cert2 := tofutest.LoopbackCert(t, "localhost"), tofutest.LoopbackCert(t, "localhost")
	u := startUpstream(t, cert1, answer("20 text/gemini\r\n# hello\n"))
	pins := tofu.NewMemStore()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &Client{Pins: pins, Now: func() time.Time { return now }}
	url := "gemini://localhost:" + strconv.Itoa(u.port) + "/page.gmi#frag"
	ctx := context.Background()

	// First use pins the certificate.
	resp, err := c.Do(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "# hello\n" {
		t.Fatalf("body %q, %v", body, err)
	}
	if resp.Status != 20 || resp.Meta != "text/gemini" || resp.PinOutcome != tofu.FirstUse {
		t.Fatalf("got %d %q %v", resp.Status, resp.Meta, resp.PinOutcome)
	}
	id1 := tofu.IdentityOf(cert1.Leaf)
	if resp.ServerIdentity != id1 || resp.ServerCert == nil {
		t.Fatal("response does not carry the server identity")
	}
	seen := u.next(t)
	if seen.line != "gemini://localhost:"+strconv.Itoa(u.port)+"/page.gmi" {
		t.Errorf("request line %q: fragment must not be sent", seen.line)
	}
	if seen.sni != "localhost" {
		t.Errorf("SNI %q, want localhost", seen.sni)
	}
	key := tofu.PinKey{Kind: tofu.PinUpstream, Scope: "localhost:" + strconv.Itoa(u.port)}
	pin, ok := pins.Lookup(key)
	if !ok || pin.Identity != id1 || !pin.Created.Equal(now) {
		t.Fatalf("pin %+v, %v", pin, ok)
	}

	// Second connection matches.
	resp, err = c.Do(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u.next(t)
	if resp.PinOutcome != tofu.Match {
		t.Fatalf("second outcome %v, want match", resp.PinOutcome)
	}

	// A new key on the same host and port is refused before any request is
	// sent, and before the client certificate is shown.
	clientCert := tofutest.LoopbackCert(t, "me")
	c.Certificate = &clientCert
	u.cert.Store(&cert2)
	_, err = c.Do(ctx, url)
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("err = %v, want ErrPinMismatch", err)
	}
	var pm *PinMismatchError
	if !errors.As(err, &pm) || pm.Pinned.Identity != id1 || pm.Presented != tofu.IdentityOf(cert2.Leaf) {
		t.Fatalf("mismatch details %+v", pm)
	}
	if !strings.Contains(err.Error(), id1.CertFingerprint().String()) ||
		!strings.Contains(err.Error(), tofu.IdentityOf(cert2.Leaf).CertFingerprint().String()) {
		t.Errorf("error %q lacks the expected and actual fingerprints", err)
	}
	if seen := u.next(t); seen.err == nil || seen.line != "" || seen.clientCert != nil {
		t.Errorf("upstream completed the handshake or got a request: %+v", seen)
	}
	if pin2, _ := pins.Lookup(key); pin2.Identity != id1 {
		t.Error("pin changed after a mismatch")
	}
}

func TestClientNoPins(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer("51 not here\r\n"))
	var c Client
	resp, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 51 || resp.Meta != "not here" || resp.Body != nil || resp.PinOutcome != 0 {
		t.Fatalf("got %+v", resp)
	}
	if seen := u.next(t); seen.sni != "" {
		t.Errorf("SNI %q sent for an IP literal", seen.sni)
	}
}

func TestClientCertificatePresented(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer("20 text/plain\r\nok"))
	me := tofutest.LoopbackCert(t, "me")
	c := &Client{Certificate: &me}
	resp, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := u.next(t)
	if seen.clientCert == nil || tofu.IdentityOf(seen.clientCert) != tofu.IdentityOf(me.Leaf) {
		t.Fatal("upstream did not receive the client certificate")
	}
}

func TestClientReadTimeout(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.Copy(io.Discard, c) // never answers
	})
	c := &Client{ReadTimeout: 100 * time.Millisecond}
	_, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestClientConnectTimeout(t *testing.T) {
	// A TCP server that never speaks TLS.
	u := startRawUpstream(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := &Client{ConnectTimeout: 100 * time.Millisecond}
	_, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestIsTimeout(t *testing.T) {
	// A real deadline error from a connection.
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	a.SetReadDeadline(time.Unix(1, 0))
	_, deadline := a.Read(make([]byte, 1))
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"conn deadline", deadline, true},
		{"os deadline", os.ErrDeadlineExceeded, true},
		{"context deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), true},
		{"client timeout", fmt.Errorf("read header: %w", ErrTimeout), true},
		{"net timeout", &net.DNSError{IsTimeout: true}, true},
		{"cancelled", context.Canceled, false},
		{"eof", io.EOF, false},
		{"refused", errors.New("connection refused"), false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTimeout(tc.err); got != tc.want {
				t.Errorf("IsTimeout(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestClientIdleTimeoutIsPerRead(t *testing.T) {
	// The body arrives in many chunks, each well within the idle timeout;
	// the client reads each one only after the server was told to send it,
	// so the total time exceeds the idle timeout without tripping it.
	const chunks = 5
	next := make(chan struct{})
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "20 text/plain\r\n")
		for range chunks {
			<-next
			io.WriteString(c, "chunk")
		}
	})
	c := &Client{ReadTimeout: 2 * time.Second}
	resp, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	for i := range chunks {
		next <- struct{}{}
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "chunk" {
			t.Fatalf("chunk %d: %q, %v", i, buf, err)
		}
	}
	if _, err := resp.Body.Read(buf); err != io.EOF {
		t.Fatalf("end of body: %v, want EOF", err)
	}
}

func TestClientCancelDuringBody(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "20 text/plain\r\npartial")
		io.Copy(io.Discard, c) // then stalls
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c Client
	resp, err := c.Do(ctx, "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want context.Canceled", err)
	}
}

func TestClientBadHeader(t *testing.T) {
	tests := map[string]string{
		"bare LF":              "20 text/gemini\n",
		"no space":             "20text/gemini\r\n",
		"three digits":         "200 text/gemini\r\n",
		"status 70":            "70 x\r\n",
		"status 09":            "09 x\r\n",
		"meta too long":        "20 " + strings.Repeat("a", MaxMeta+1) + "\r\n",
		"header too long":      strings.Repeat("a", 4096),
		"invalid utf-8":        "20 \xff\xfe\r\n",
		"closed without CRLF":  "20 text/gemini",
		"closed without bytes": "",
		"CR without LF":        "20 text/gemini\rmore\r\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer(raw))
			c := &Client{ReadTimeout: 5 * time.Second}
			resp, err := c.Do(context.Background(), "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("got %+v, %v; want ErrBadHeader", resp, err)
			}
		})
	}
}

func TestClientBadURL(t *testing.T) {
	for _, u := range []string{
		"https://example.org/",
		"gemini://user@example.org/",
		"gemini:///path",
		"gemini://example.org/" + strings.Repeat("a", MaxRequestLine),
		"gemini://example.org/a\r\nb",
		"::",
	} {
		var c Client
		if _, err := c.Do(context.Background(), u); err == nil {
			t.Errorf("Do(%q) succeeded", u)
		}
	}
}

func TestClientRequestParts(t *testing.T) {
	tests := []struct {
		url, line, addr, sni string
	}{
		{"gemini://Example.org/a?b#c", "gemini://Example.org/a?b", "Example.org:1965", "example.org"},
		{"gemini://example.org:1966", "gemini://example.org:1966", "example.org:1966", "example.org"},
		{"gemini://[::1]/", "gemini://[::1]/", "[::1]:1965", ""},
		{"gemini://192.0.2.1:7/", "gemini://192.0.2.1:7/", "192.0.2.1:7", ""},
	}
	for _, tc := range tests {
		line, addr, sni, err := clientRequest(tc.url)
		if err != nil || line != tc.line || addr != tc.addr || sni != tc.sni {
			t.Errorf("clientRequest(%q) = %q %q %q %v; want %q %q %q", tc.url, line, addr, sni, err, tc.line, tc.addr, tc.sni)
		}
	}
}

func TestClientCancelWhileWaitingForHeader(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, br *bufio.Reader, _ string) {
		io.Copy(io.Discard, br) // never answers
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Client{ReadTimeout: time.Hour}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/")
		errc <- err
	}()
	u.next(t) // the request arrived; the client now waits for the header
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestClientLearnsKeyExchange checks that a client with LearnKeyExchange
// stops generating post-quantum key shares for a server that never uses
// them, and keeps offering them to one that does.
func TestClientLearnsKeyExchange(t *testing.T) {
	for _, tc := range []struct {
		name       string
		serverPref []tls.CurveID
		secondHas  bool // the second ClientHello still offers X25519MLKEM768
	}{
		{"classical server", []tls.CurveID{tls.X25519}, false},
		{"post-quantum server", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := tofutest.LoopbackCert(t, "x")
			var mu sync.Mutex
			var hellos [][]tls.CurveID
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates:     []tls.Certificate{cert},
				CurvePreferences: tc.serverPref,
				GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					mu.Lock()
					hellos = append(hellos, h.SupportedCurves)
					mu.Unlock()
					return nil, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						bufio.NewReader(c).ReadString('\n')
						io.WriteString(c, "20 text/plain\r\nok")
					}()
				}
			}()
			c := &Client{LearnKeyExchange: true}
			for i := 0; i < 2; i++ {
				resp, err := c.Do(context.Background(), "gemini://"+ln.Addr().String()+"/")
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(hellos) != 2 || !slices.Contains(hellos[0], tls.X25519MLKEM768) {
				t.Fatalf("hellos %v: the first must offer X25519MLKEM768", hellos)
			}
			if got := slices.Contains(hellos[1], tls.X25519MLKEM768); got != tc.secondHas {
				t.Fatalf("second hello %v: offers X25519MLKEM768 = %v, want %v", hellos[1], got, tc.secondHas)
			}
		})
	}
}
