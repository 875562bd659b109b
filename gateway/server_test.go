package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

// genPair makes a key pair for cn, valid days from now, with tofutest.
func genPair(t testing.TB, cn string, now time.Time, days int) (tls.Certificate, []byte, []byte) {
	t.Helper()
	return tofutest.KeyPair(t, tofu.CertRequest{CommonName: cn, DNSNames: []string{cn}, Days: days, Now: now})
}

func writePair(t testing.TB, dir, name string, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(c, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, k
}

type testServer struct {
	*Server
	addr  string
	dir   string
	pins  *tofu.MemStore
	admin tls.Certificate // allowed on /admin/
}

type serverOpt func(*Config)

// startServer runs a Server on 127.0.0.1:0 with host "localhost" (aliases
// 127.0.0.1) and these routes:
//
//	/admin/   require an allowed fingerprint (ts.admin)
//	/app/     TOFU claim
//	/cert/    require any certificate
//	/upload/  Titan uploads up to 16 bytes, echoing the body size
//	/files/   a document root holding files/one.gmi
//	/dead/    a proxy to an upstream that refuses connections
//	/         a handler answering "20 text/gemini" with the canonical path
func startServer(t testing.TB, opts ...serverOpt) *testServer {
	t.Helper()
	dir := t.TempDir()
	_, certPEM, keyPEM := genPair(t, "localhost", time.Now(), 30)
	certFile, keyFile := writePair(t, dir, "localhost", certPEM, keyPEM)
	admin, _, _ := genPair(t, "admin", time.Now(), 30)
	adminID := tofu.IdentityOf(mustLeaf(t, admin))
	pins := tofu.NewMemStore()
	echo := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		w.WriteHeader(20, "text/gemini")
		_, err := io.WriteString(w, "path="+r.Path+"\n")
		return err
	})
	upload := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return err
		}
		w.WriteHeader(20, "text/plain")
		_, err = fmt.Fprintf(w, "got %d", n)
		return err
	})
	docroot := filepath.Join(dir, "docroot")
	os.MkdirAll(filepath.Join(docroot, "files"), 0o755)
	os.WriteFile(filepath.Join(docroot, "files", "one.gmi"), []byte("# one\n"), 0o644)
	files, closer, err := NewDocroot(docroot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	dead, err := NewProxy(ProxyConfig{Upstream: "tcp://" + deadAddr(t), ConnectTimeout: time.Second, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Listen: "127.0.0.1:0",
		Hosts: []Host{{
			Name: "localhost", Aliases: []string{"127.0.0.1"},
			CertFile: certFile, KeyFile: keyFile,
			Routes: []Route{
				{Prefix: "/admin/", AllowedFingerprints: []tofu.Fingerprint{adminID.CertFingerprint()}, Handler: echo},
				{Prefix: "/app/", TOFUClaim: true, Handler: echo},
				{Prefix: "/cert/", RequireCert: true, Handler: echo},
				{Prefix: "/upload/", Uploads: true, MaxUploadBytes: 16, Handler: upload},
				{Prefix: "/files/", Handler: files},
				{Prefix: "/dead/", Handler: dead},
				{Prefix: "/", Handler: echo},
			},
		}},
		Limits:             DefaultLimits(),
		Layers:             Layers{Pins: pins},
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
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testServer{Server: s, addr: s.Addr().String(), dir: dir, pins: pins, admin: admin}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func mustLeaf(t testing.TB, c tls.Certificate) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// client is a raw Gemini client for tests.
type client struct {
	sni     string
	cert    *tls.Certificate
	version uint16 // max TLS version; 0 = default
	local   string // local IP to dial from; "" = 127.0.0.1
}

type response struct {
	status int
	meta   string
	body   string
}

func (c client) dial(addr string) (*tls.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if c.local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.local)}
	}
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: c.sni, MaxVersion: c.version}
	if c.version != 0 && c.version < tls.VersionTLS12 {
		cfg.MinVersion = c.version
	}
	if c.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cert}
	}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

func (c client) do(addr, line string) (response, error) {
	tc, err := c.dial(addr)
	if err != nil {
		return response{}, err
	}
	defer tc.Close()
	if _, err := io.WriteString(tc, line); err != nil {
		return response{}, err
	}
	return readResponse(tc)
}

func readResponse(r io.Reader) (response, error) {
	br := bufio.NewReader(r)
	hdr, err := br.ReadString('\n')
	if err != nil {
		return response{}, fmt.Errorf("read header: %w", err)
	}
	if !strings.HasSuffix(hdr, "\r\n") || len(hdr) < 4 {
		return response{}, fmt.Errorf("bad header %q", hdr)
	}
	var resp response
	if _, err := fmt.Sscanf(hdr[:2], "%d", &resp.status); err != nil {
		return response{}, fmt.Errorf("bad status %q", hdr)
	}
	resp.meta = strings.TrimSuffix(hdr[3:], "\r\n")
	body, err := io.ReadAll(br)
	resp.body = string(body)
	return resp, err
}

func mustDo(t *testing.T, c client, addr, line string) response {
	t.Helper()
	resp, err := c.do(addr, line)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return resp
}

func TestStatuses(t *testing.T) {
	ts := startServer(t)
	port := ts.addr[strings.LastIndex(ts.addr, ":")+1:]
	other, _, _ := genPair(t, "other", time.Now(), 30)
	expired, _, _ := genPair(t, "old", time.Now().Add(-48*time.Hour), 1)
	future, _, _ := genPair(t, "new", time.Now().Add(48*time.Hour), 1)
	anon := client{sni: "localhost"}
	withCert := func(c tls.Certificate) client { return client{sni: "localhost", cert: &c} }

	tests := []struct {
		name   string
		c      client
		line   string
		status int
		meta   string // substring
		body   string // substring, for 20
	}{
		{"served", anon, "gemini://localhost/hello.gmi\r\n", 20, "text/gemini", "path=/hello.gmi"},
		{"explicit listen port", anon, "gemini://localhost:" + port + "/\r\n", 20, "", "path=/"},
		{"canonical path reaches handler", anon, "gemini://localhost/a/./b/../%63\r\n", 20, "", "path=/a/c"},
		{"no SNI, alias host", client{}, "gemini://127.0.0.1/\r\n", 20, "", "path=/"},
		{"docroot file", anon, "gemini://localhost/files/one.gmi\r\n", 20, "text/gemini", "# one"},
		{"docroot missing", anon, "gemini://localhost/files/two.gmi\r\n", 51, "", ""},
		{"upstream down", anon, "gemini://localhost/dead/x\r\n", 43, "", ""},
		{"bad request", anon, "gemini://localhost/%zz\r\n", 59, "", ""},
		{"relative URL", anon, "/hello\r\n", 59, "", ""},
		{"fragment", anon, "gemini://localhost/#x\r\n", 59, "", ""},
		{"userinfo", anon, "gemini://u@localhost/\r\n", 59, "", ""},
		{"other scheme", anon, "https://localhost/\r\n", 53, "", ""},
		{"other host", anon, "gemini://example.org/\r\n", 53, "", ""},
		{"host differs from SNI", client{sni: "localhost"}, "gemini://127.0.0.1/\r\n", 53, "", ""},
		{"unknown SNI", client{sni: "example.org"}, "gemini://example.org/\r\n", 53, "", ""},
		{"other port", anon, "gemini://localhost:1/\r\n", 53, "", ""},
		{"cert required", anon, "gemini://localhost/cert/x\r\n", 60, "", ""},
		{"cert given", withCert(other), "gemini://localhost/cert/x\r\n", 20, "", "path=/cert/x"},
		{"admin without cert", anon, "gemini://localhost/admin/\r\n", 60, "", ""},
		{"admin wrong cert", withCert(other), "gemini://localhost/admin/\r\n", 61, "", ""},
		{"admin right cert", withCert(ts.admin), "gemini://localhost/admin/\r\n", 20, "", "path=/admin/"},
		{"admin encoded bypass", withCert(other), "gemini://localhost/%61dmin/x\r\n", 61, "", ""},
		{"admin case bypass", anon, "gemini://localhost/ADMIN/x\r\n", 60, "", ""},
		{"expired cert", withCert(expired), "gemini://localhost/cert/\r\n", 62, "", ""},
		{"not yet valid cert", withCert(future), "gemini://localhost/cert/\r\n", 62, "", ""},
		{"titan on route without uploads", anon, "titan://localhost/x;size=1\r\na", 50, "", ""},
		{"titan too large", anon, "titan://localhost/upload/f;size=17\r\n", 59, "limit", ""},
		{"titan upload", anon, "titan://localhost/upload/f;size=5;mime=text/plain;token=s3cret\r\nhello", 20, "", "got 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := mustDo(t, tc.c, ts.addr, tc.line)
			if resp.status != tc.status {
				t.Fatalf("status %d %q, want %d", resp.status, resp.meta, tc.status)
			}
			if !strings.Contains(resp.meta, tc.meta) {
				t.Errorf("meta %q, want it to contain %q", resp.meta, tc.meta)
			}
			if !strings.Contains(resp.body, tc.body) {
				t.Errorf("body %q, want it to contain %q", resp.body, tc.body)
			}
		})
	}
	// Every answer is counted by its status and by the decision behind it.
	want := map[string]uint64{"allowed": 8, "not_found": 1, "upstream_error": 1, "proxy_refused": 5,
		"cert_required": 3, "cert_not_authorized": 2, "cert_invalid": 2, "uploads_refused": 1}
	waitFor(t, "every answer counted", func() bool {
		var n uint64
		for _, c := range ts.Stats().Responses {
			n += c
		}
		return n == uint64(len(tests))
	})
	st := ts.Stats()
	var byDecision uint64
	for _, n := range st.Requests {
		byDecision += n
	}
	if byDecision != uint64(len(tests)) || st.Responses[20] != 8 || st.Responses[60] != 3 {
		t.Errorf("counted %d requests by decision, responses %v; want %d, 8 × 20 and 3 × 60", byDecision, st.Responses, len(tests))
	}
	for reason, n := range want {
		if st.Requests[reason] != n {
			t.Errorf("Requests[%s] = %d, want %d (all: %v)", reason, st.Requests[reason], n, st.Requests)
		}
	}
}

func TestRequestLineLength(t *testing.T) {
	ts := startServer(t)
	base := "gemini://localhost/"
	fill := func(n int) string { return base + strings.Repeat("a", n-len(base)) }
	c := client{sni: "localhost"}
	if r := mustDo(t, c, ts.addr, fill(1024)+"\r\n"); r.status != 20 {
		t.Fatalf("1024 bytes: status %d %q, want 20", r.status, r.meta)
	}
	if r := mustDo(t, c, ts.addr, fill(1025)+"\r\n"); r.status != 59 {
		t.Fatalf("1025 bytes: status %d, want 59", r.status)
	}
	// A long line without CRLF is refused as soon as it passes the limit.
	if r := mustDo(t, c, ts.addr, fill(2000)); r.status != 59 {
		t.Fatalf("2000 bytes without CRLF: status %d, want 59", r.status)
	}
}

func TestMissingCRWaitsForTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Limits.RequestTimeout = 300 * time.Millisecond })
	tc, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	io.WriteString(tc, "gemini://localhost/\n")
	// The server must not answer a bare-LF line; it closes at the deadline.
	b, err := io.ReadAll(tc)
	if len(b) != 0 {
		t.Fatalf("server answered a line without CR: %q", b)
	}
	if err != nil && !errors.Is(err, io.EOF) && !isConnReset(err) {
		t.Fatalf("read: %v", err)
	}
	if got := ts.Stats().RequestTimeouts; got != 1 {
		t.Fatalf("request timeouts = %d, want 1", got)
	}
}

func isConnReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

func TestTLS11Refused(t *testing.T) {
	ts := startServer(t)
	_, err := client{sni: "localhost", version: tls.VersionTLS11}.dial(ts.addr)
	if err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	tc, err := client{sni: "localhost", version: tls.VersionTLS12}.dial(ts.addr)
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	tc.Close()
	tc, err = client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", v)
	}
	tc.Close()
}

func TestDeniedIPClosedWithoutHandshake(t *testing.T) {
	deny := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	ts := startServer(t, func(c *Config) { c.Layers.Access = NewAccessList(nil, deny, true) })
	_, err := client{sni: "localhost", local: "127.0.0.2"}.dial(ts.addr)
	if err == nil {
		t.Fatal("denied address completed a handshake")
	}
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/\r\n"); r.status != 20 {
		t.Fatalf("allowed client got %d", r.status)
	}
	st := ts.Stats()
	if st.RefusedAtAccept["access_denied"] != 1 {
		t.Fatalf("refused = %v, want access_denied:1", st.RefusedAtAccept)
	}
	if st.HandshakeFailed != 0 {
		t.Fatalf("a handshake was attempted for the denied address: %+v", st)
	}
}

func TestBannedClosedWithoutHandshake(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Layers.Bans = banSet{netip.MustParseAddr("127.0.0.3"): true} })
	if _, err := (client{sni: "localhost", local: "127.0.0.3"}).dial(ts.addr); err == nil {
		t.Fatal("banned address completed a handshake")
	}
	if got := ts.Stats().RefusedAtAccept["banned"]; got != 1 {
		t.Fatalf("banned refusals = %d, want 1", got)
	}
}

type banSet map[netip.Addr]bool

func (b banSet) Banned(a netip.Addr, _ time.Time) bool { return b[a] }

func TestRateLimits(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	lim, err := ratelimit.New(ratelimit.Config{Capacity: 2, RefillPerSec: 0.5, HardFactor: 2, IPv4Prefix: 32, IPv6Prefix: 64, MaxKeys: 1000, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(c *Config) { c.Layers.Limiter = lim })
	c := client{sni: "localhost", local: "127.0.0.4"}
	for i := 0; i < 2; i++ {
		if r := mustDo(t, c, ts.addr, "gemini://localhost/\r\n"); r.status != 20 {
			t.Fatalf("request %d: %d, want 20", i, r.status)
		}
	}
	r := mustDo(t, c, ts.addr, "gemini://localhost/\r\n")
	if r.status != 44 || r.meta != "4" {
		t.Fatalf("soft limit: %d %q, want 44 4", r.status, r.meta)
	}
	mustDo(t, c, ts.addr, "gemini://localhost/\r\n") // second soft
	if _, err := c.dial(ts.addr); err == nil {
		t.Fatal("hard limit: handshake completed")
	}
	if got := ts.Stats().RefusedAtAccept["rate_limited_hard"]; got != 1 {
		t.Fatalf("hard refusals = %d, want 1", got)
	}
	waitFor(t, "the soft refusals counted", func() bool { return ts.Stats().Requests["rate_limited"] == 2 })
	// Other clients are unaffected.
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/\r\n"); r.status != 20 {
		t.Fatalf("other client: %d", r.status)
	}
}

func TestTOFUClaim(t *testing.T) {
	ts := startServer(t)
	first, _, _ := genPair(t, "first", time.Now(), 30)
	second, _, _ := genPair(t, "second", time.Now(), 30)
	c1, c2 := client{sni: "localhost", cert: &first}, client{sni: "localhost", cert: &second}
	if r := mustDo(t, c1, ts.addr, "gemini://localhost/app/\r\n"); r.status != 20 {
		t.Fatalf("first use: %d", r.status)
	}
	if r := mustDo(t, c2, ts.addr, "gemini://localhost/app/x\r\n"); r.status != 61 {
		t.Fatalf("other cert: %d, want 61", r.status)
	}
	if r := mustDo(t, c1, ts.addr, "gemini://localhost/APP/x\r\n"); r.status != 20 {
		t.Fatalf("owner again: %d, want 20", r.status)
	}
	pin, ok := ts.pins.Lookup(tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/app/"})
	if !ok || pin.Identity != tofu.IdentityOf(mustLeaf(t, first)) {
		t.Fatalf("pin = %+v, %v", pin, ok)
	}
}

// dialIdle opens a TCP connection that completes no handshake.
func dialIdle(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSlowlorisDoesNotStarveOthers(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.Limits.MaxConnsPerIP = 200
		c.Limits.HandshakeTimeout = time.Minute
	})
	// 150 connections from one attacker address that never handshake, and
	// 50 more from others that handshake and never send a request line.
	for i := 0; i < 150; i++ {
		dialIdle(t, ts.addr, "127.0.0.5")
	}
	for i := 0; i < 50; i++ {
		tc, err := client{sni: "localhost", local: "127.0.0.6"}.dial(ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
	}
	waitFor(t, "200 idle connections held", func() bool { return ts.Stats().OpenConnections >= 200 })
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/ok\r\n"); r.status != 20 {
		t.Fatalf("normal client: %d", r.status)
	}
}

func TestPerIPConnectionCap(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Limits.MaxConnsPerIP = 3 })
	for i := 0; i < 3; i++ {
		dialIdle(t, ts.addr, "127.0.0.7")
	}
	waitFor(t, "3 connections held", func() bool { return ts.Stats().OpenConnections == 3 })
	if _, err := (client{sni: "localhost", local: "127.0.0.7"}).dial(ts.addr); err == nil {
		t.Fatal("fourth connection from the same address completed a handshake")
	}
	if got := ts.Stats().RefusedAtAccept["conn_limit"]; got != 1 {
		t.Fatalf("conn_limit refusals = %d, want 1", got)
	}
	if r := mustDo(t, client{sni: "localhost", local: "127.0.0.8"}, ts.addr, "gemini://localhost/\r\n"); r.status != 20 {
		t.Fatalf("another address: %d", r.status)
	}
}

func TestCertificateReload(t *testing.T) {
	ts := startServer(t)
	certFile, keyFile := filepath.Join(ts.dir, "localhost.crt"), filepath.Join(ts.dir, "localhost.key")
	tc, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	old := tc.ConnectionState().PeerCertificates[0].Raw
	// An open connection survives the reload.
	defer tc.Close()

	_, certPEM, keyPEM := genPair(t, "localhost", time.Now(), 60)
	// Write to temporary names and rename, as certificate tools do.
	tmpC, tmpK := writePair(t, ts.dir, "next", certPEM, keyPEM)
	os.Rename(tmpK, keyFile)
	os.Rename(tmpC, certFile)
	if err := ts.ReloadCertificates(); err != nil {
		t.Fatal(err)
	}
	tc2, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc2.Close()
	if string(tc2.ConnectionState().PeerCertificates[0].Raw) == string(old) {
		t.Fatal("new connections still get the old certificate")
	}
	io.WriteString(tc, "gemini://localhost/still\r\n")
	r, err := readResponse(tc)
	if err != nil || r.status != 20 {
		t.Fatalf("connection opened before the reload: %v %+v", err, r)
	}
	// A broken file keeps the current certificate.
	os.WriteFile(certFile, []byte("garbage"), 0o644)
	if err := ts.ReloadCertificates(); err == nil {
		t.Fatal("reload of a broken certificate reported no error")
	}
	tc3, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatalf("after failed reload: %v", err)
	}
	tc3.Close()
}

func TestCloseDropsIdleConnections(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Limits.RequestTimeout = time.Hour })
	tc, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	idle := dialIdle(t, ts.addr, "127.0.0.1") // no handshake either
	waitFor(t, "2 connections", func() bool { return ts.Stats().OpenConnections == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Connections without a request do not hold the shutdown up.
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if ts.Stats().OpenConnections != 0 {
		t.Fatal("connections left open")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection still open")
	}
}

func TestCloseNotifySent(t *testing.T) {
	ts := startServer(t)
	tc, err := client{sni: "localhost"}.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	io.WriteString(tc, "gemini://localhost/\r\n")
	// crypto/tls returns io.EOF only after a close_notify alert; a bare TCP
	// close gives io.ErrUnexpectedEOF.
	_, err = io.ReadAll(tc)
	if err != nil {
		t.Fatalf("read to end: %v (no close_notify?)", err)
	}
}

// TestLogsNeverHoldClientAddresses drives requests that log at every level
// (debug handshake failures, warnings for clients that vanish mid-response,
// info request lines) and checks the log names clients by hash only.
func TestLogsNeverHoldClientAddresses(t *testing.T) {
	var logs syncBuffer
	hasher := hashFunc(func(a netip.Addr) string { return "h:" + strconv.Itoa(len(a.String())) })
	big := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		w.WriteHeader(20, "application/octet-stream")
		chunk := make([]byte, 64<<10)
		for i := 0; i < 256; i++ { // 16 MiB: more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	ts := startServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Hasher = hasher
		c.Hosts[0].Routes = append([]Route{{Prefix: "/big/", Handler: big}}, c.Hosts[0].Routes...)
	})
	c := client{sni: "localhost", local: "127.0.0.77"}
	mustDo(t, c, ts.addr, "gemini://localhost/\r\n")
	mustDo(t, c, ts.addr, "gemini://localhost/%zz\r\n")
	mustDo(t, c, ts.addr, "titan://localhost/upload/f;size=2;token=Sesame-Token\r\nhi")
	mustDo(t, c, ts.addr, "titan://localhost/upload/f;size=99;token=Sesame-Token\r\n")
	// A handshake that fails: plain text instead of TLS.
	raw := dialIdle(t, ts.addr, "127.0.0.77")
	io.WriteString(raw, "GET / HTTP/1.0\r\n\r\n")
	io.ReadAll(raw)
	// A client that goes away in the middle of a large response.
	tc, err := c.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "gemini://localhost/big/\r\n")
	tc.Read(make([]byte, 10))
	tc.NetConn().(*net.TCPConn).SetLinger(0)
	tc.NetConn().Close()
	waitFor(t, "the cut-short response to be logged", func() bool { return strings.Contains(logs.String(), "response cut short") })
	waitFor(t, "the failed handshake to be logged", func() bool { return strings.Contains(logs.String(), `"msg":"handshake"`) })
	out := logs.String()
	if strings.Contains(out, "127.0.0.77") {
		t.Fatalf("a raw client address reached the log:\n%s", out)
	}
	if strings.Contains(out, "Sesame") {
		t.Fatalf("a Titan token reached the log:\n%s", out)
	}
	if !strings.Contains(out, `"scheme":"titan"`) {
		t.Fatalf("the Titan requests were not logged:\n%s", out)
	}
	if !strings.Contains(out, `"client":"h:10"`) {
		t.Fatalf("requests are not logged with the client hash:\n%s", out)
	}
}

type hashFunc func(netip.Addr) string

func (f hashFunc) HashAddr(a netip.Addr) string { return f(a) }

// syncBuffer is a bytes.Buffer safe for the server's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestVirtualHosts(t *testing.T) {
	dir := t.TempDir()
	_, bCert, bKey := genPair(t, "b.example", time.Now(), 30)
	bCertFile, bKeyFile := writePair(t, dir, "b", bCert, bKey)
	hostB := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		w.WriteHeader(20, "text/gemini")
		_, err := io.WriteString(w, "host b "+r.Path)
		return err
	})
	ts := startServer(t, func(c *Config) {
		c.Hosts = append(c.Hosts, Host{
			Name: "B.Example.", CertFile: bCertFile, KeyFile: bKeyFile,
			Routes: []Route{{Prefix: "/", Handler: hostB}},
		})
	})
	bc := client{sni: "b.example"}
	tc, err := bc.dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "b.example" {
		t.Fatalf("SNI b.example got the certificate of %q", cn)
	}
	tc.Close()
	if r := mustDo(t, bc, ts.addr, "gemini://B.EXAMPLE./x\r\n"); r.status != 20 || r.body != "host b /x" {
		t.Fatalf("host b: %+v", r)
	}
	// Host A's name on host B's connection is refused, and the other way round.
	if r := mustDo(t, bc, ts.addr, "gemini://localhost/\r\n"); r.status != 53 {
		t.Fatalf("host a over b's handshake: %d, want 53", r.status)
	}
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://b.example/\r\n"); r.status != 53 {
		t.Fatalf("host b over a's handshake: %d, want 53", r.status)
	}
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/y\r\n"); r.status != 20 || !strings.Contains(r.body, "path=/y") {
		t.Fatalf("host a: %+v", r)
	}
}

func TestTotalConnectionCap(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Limits.MaxConns = 2 })
	dialIdle(t, ts.addr, "127.0.0.11")
	dialIdle(t, ts.addr, "127.0.0.12")
	waitFor(t, "2 connections held", func() bool { return ts.Stats().OpenConnections == 2 })
	if _, err := (client{sni: "localhost", local: "127.0.0.13"}).dial(ts.addr); err == nil {
		t.Fatal("a third connection completed a handshake past max_conns=2")
	}
	if got := ts.Stats().RefusedAtAccept["conn_limit"]; got != 1 {
		t.Fatalf("conn_limit refusals = %d, want 1", got)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Limits.HandshakeTimeout = 200 * time.Millisecond })
	c := dialIdle(t, ts.addr, "127.0.0.14") // TCP only: never sends a ClientHello
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client: read %d, %v; want the server to close first", n, err)
	}
	waitFor(t, "the failed handshake to be counted", func() bool { return ts.Stats().HandshakeFailed == 1 })
}

// TestLargeResponseArrivesWhole checks the close sequence: a response much
// larger than the socket buffers arrives complete, whether or not the client
// sent bytes after its request line (which the server must drain so that
// closing does not reset the connection under the response).
func TestLargeResponseArrivesWhole(t *testing.T) {
	const size = 8 << 20
	big := HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) error {
		w.WriteHeader(20, "application/octet-stream")
		chunk := bytes.Repeat([]byte{'x'}, 64<<10)
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	ts := startServer(t, func(c *Config) {
		c.Hosts[0].Routes = append([]Route{{Prefix: "/big/", Handler: big}}, c.Hosts[0].Routes...)
	})
	for _, trailing := range []string{"", "unexpected bytes after the request line"} {
		r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/big/\r\n"+trailing)
		if r.status != 20 || len(r.body) != size {
			t.Fatalf("trailing %q: status %d, %d body bytes, want %d", trailing, r.status, len(r.body), size)
		}
	}
}

func TestKeyExchanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []tls.CurveID
		want   tls.CurveID
	}{
		{"default prefers the post-quantum hybrid", nil, tls.X25519MLKEM768},
		{"classical only", []tls.CurveID{tls.X25519, tls.CurveP256}, tls.X25519},
		{"P-256 only", []tls.CurveID{tls.CurveP256}, tls.CurveP256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) { c.KeyExchanges = tc.groups })
			tc2, err := client{sni: "localhost"}.dial(ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer tc2.Close()
			if got := tc2.ConnectionState().CurveID; got != tc.want {
				t.Fatalf("negotiated %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCloseTwiceAndReopen(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("second close = %v, want nil", err)
	}
	if err := ts.Open(ctx); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("open after close = %v, want ErrServerClosed", err)
	}
	fresh, err := New(Config{Hosts: []Host{{Name: "localhost", CertFile: filepath.Join(ts.dir, "localhost.crt"), KeyFile: filepath.Join(ts.dir, "localhost.key"), Routes: []Route{{Prefix: "/", Handler: WelcomeHandler()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Close(ctx); err != nil {
		t.Fatalf("close of a server never opened = %v, want nil", err)
	}
}

// TestDocrootLinkEndToEnd: with /admin/ protected and "ln -s admin
// www/link", /link/secret.gmi is served only to a client /admin/ admits.
func TestDocrootLinkEndToEnd(t *testing.T) {
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "admin", "secret.gmi"), []byte("secret\n"))
	writeFile(t, filepath.Join(www, "index.gmi"), []byte("# home\n"))
	symlink(t, "admin", filepath.Join(www, "link"))
	files := openDocroot(t, www)
	ts := startServer(t, func(c *Config) {
		admin := c.Hosts[0].Routes[0] // /admin/, allowing ts.admin
		c.Hosts[0].Routes = []Route{
			{Prefix: "/admin/", AllowedFingerprints: admin.AllowedFingerprints, Handler: files},
			{Prefix: "/", Handler: files},
		}
	})
	other, _, _ := genPair(t, "other", time.Now(), 30)
	tests := []struct {
		name   string
		c      client
		path   string
		status int
		body   string
	}{
		{"anonymous, direct", client{sni: "localhost"}, "/admin/secret.gmi", 60, ""},
		{"anonymous, through the link", client{sni: "localhost"}, "/link/secret.gmi", 60, ""},
		{"anonymous, link to a missing file", client{sni: "localhost"}, "/link/nothing.gmi", 60, ""},
		{"other certificate, through the link", client{sni: "localhost", cert: &other}, "/link/secret.gmi", 61, ""},
		{"admin, through the link", client{sni: "localhost", cert: &ts.admin}, "/link/secret.gmi", 20, "secret\n"},
		{"anonymous, open file", client{sni: "localhost"}, "/index.gmi", 20, "# home\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.c.do(ts.addr, "gemini://localhost"+tc.path+"\r\n")
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != tc.status || tc.status == 20 && resp.body != tc.body {
				t.Fatalf("%s: %d %q %q, want %d %q", tc.path, resp.status, resp.meta, resp.body, tc.status, tc.body)
			}
		})
	}
}
