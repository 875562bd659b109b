package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

func newTestProxy(t *testing.T, cfg ProxyConfig) Handler {
	t.Helper()
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	h, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestProxyStreamsBodyAndRewritesHost(t *testing.T) {
	body := make([]byte, 4<<20+3)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	u := startUpstream(t, tofutest.LoopbackCert(t, "backend.internal"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "20 application/octet-stream\r\n")
		c.Write(body)
	})
	pins := tofu.NewMemStore()
	h := newTestProxy(t, ProxyConfig{
		Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port),
		SNI:      "Backend.Internal",
		Pins:     pins,
	})
	r := geminiRequest(t, "/docs/a%20b.gmi")
	r.Host, r.Port, r.RawQuery = "public.example", 1965, "q=1"

	hw := &hashWriter{h: sha256.New()}
	w := &chunkRecorder{w: hw}
	if err := h.ServeGemini(context.Background(), w, r); err != nil {
		t.Fatal(err)
	}
	seen := u.next(t)
	want := "gemini://backend.internal:" + strconv.Itoa(u.port) + "/docs/a%20b.gmi?q=1"
	if seen.line != want {
		t.Errorf("upstream request line %q, want %q", seen.line, want)
	}
	if seen.sni != "backend.internal" {
		t.Errorf("upstream SNI %q", seen.sni)
	}
	if w.status != 20 || w.meta != "application/octet-stream" {
		t.Errorf("header %d %q", w.status, w.meta)
	}
	if sum := sha256.Sum256(body); hw.n != int64(len(body)) || !bytes.Equal(hw.h.Sum(nil), sum[:]) {
		t.Fatalf("body: %d bytes, want %d intact", hw.n, len(body))
	}
	if w.maxChunk > copyBufferSize {
		t.Errorf("largest write %d: body not streamed through the buffer", w.maxChunk)
	}
	key := tofu.PinKey{Kind: tofu.PinUpstream, Scope: "backend.internal:" + strconv.Itoa(u.port)}
	if _, ok := pins.Lookup(key); !ok {
		t.Errorf("no pin for %v", key)
	}
}

func TestProxyRelaysStatus(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer("51 Not found here\r\n"))
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore()})
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/x")); err != nil {
		t.Fatal(err)
	}
	if w.status != 51 || w.meta != "Not found here" || w.n != 0 {
		t.Fatalf("got %d %q (%d body bytes)", w.status, w.meta, w.n)
	}
}

// TestProxyResumesUpstreamSessions checks that the proxy resumes TLS
// sessions with its upstream (a full handshake per request would double the
// upstream's cost), and that a resumed connection is still pin-checked.
func TestProxyResumesUpstreamSessions(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer("20 text/plain\r\nok"))
	pins := tofu.NewMemStore()
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), SNI: "backend", Pins: pins})
	for i := 0; i < 3; i++ {
		var w recorder
		if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/x")); err != nil || w.status != 20 {
			t.Fatalf("request %d: %d %v", i, w.status, err)
		}
		seen := u.next(t)
		if want := i > 0; seen.resumed != want {
			t.Fatalf("request %d: resumed=%v, want %v", i, seen.resumed, want)
		}
	}
	// Forget the pin and pin another key: the resumed session's certificate
	// no longer matches, so the proxy refuses even without a full handshake.
	key := tofu.PinKey{Kind: tofu.PinUpstream, Scope: "backend:" + strconv.Itoa(u.port)}
	if !pins.Forget(key) {
		t.Fatalf("no pin under %v", key)
	}
	other := tofutest.LoopbackCert(t, "other")
	if _, err := pins.Claim(context.Background(), tofu.Pin{Key: key, Identity: tofu.IdentityOf(other.Leaf), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var w recorder
	err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/x"))
	var ge *Error
	if !errors.As(err, &ge) || ge.Reason != ReasonUpstreamUntrusted {
		t.Fatalf("after the pin changed: %v, want ReasonUpstreamUntrusted", err)
	}
}

func TestProxyStripPrefix(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer("20 text/gemini\r\nok"))
	h := newTestProxy(t, ProxyConfig{
		Upstream:    "gemini://127.0.0.1:" + strconv.Itoa(u.port),
		StripPrefix: "/app/",
		Pins:        tofu.NewMemStore(),
	})
	base := "gemini://127.0.0.1:" + strconv.Itoa(u.port)
	for _, tc := range []struct{ path, want string }{
		{"/app/x/y.gmi", "/x/y.gmi"},
		{"/app/", "/"},
		{"/app", "/"},
		{"/APP/x", "/x"},
		{"/application/x", "/application/x"},
		{"/other", "/other"},
	} {
		var w recorder
		if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, tc.path)); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if seen := u.next(t); seen.line != base+tc.want {
			t.Errorf("%s forwarded as %q, want %q", tc.path, seen.line, base+tc.want)
		}
	}
}

func TestProxyForwardPath(t *testing.T) {
	tests := []struct {
		strip, path, want string
	}{
		{"", "/a/b", "/a/b"},
		{"/", "/a/b", "/a/b"},
		{"/a", "/a/b", "/b"},
		{"/a/b/", "/a/b/c/d", "/c/d"},
		{"/a/b/", "/a/b", "/"},
		{"/a/b/", "/a/bc", "/a/bc"},
		{"/admin/", "/Admin;x=1/y", "/y"},
		{"/admin/", "/ADMIN", "/"},
	}
	for _, tc := range tests {
		h, err := NewProxy(ProxyConfig{Upstream: "tcp://127.0.0.1:1", StripPrefix: tc.strip})
		if err != nil {
			t.Fatalf("strip %q: %v", tc.strip, err)
		}
		if got := h.(*proxy).forwardPath(tc.path); got != tc.want {
			t.Errorf("strip %q: forwardPath(%q) = %q, want %q", tc.strip, tc.path, got, tc.want)
		}
	}
}

func TestProxyRewriteRedirect(t *testing.T) {
	h, err := NewProxy(ProxyConfig{Upstream: "tcp://10.0.0.2:1965", SNI: "backend", StripPrefix: "/app/"})
	if err != nil {
		t.Fatal(err)
	}
	p := h.(*proxy)
	for meta, want := range map[string]string{
		"gemini://backend/dir/":        "/app/dir/",
		"gemini://BACKEND:1965/dir/":   "/app/dir/",
		"gemini://backend":             "/app/",
		"gemini://backend?q":           "/app/?q",
		"/dir/":                        "/app/dir/",
		"dir/":                         "dir/",
		"gemini://backend2/x":          "gemini://backend2/x",
		"gemini://other.example/x":     "gemini://other.example/x",
		"//backend/x":                  "//backend/x",
		"https://backend/x":            "https://backend/x",
		"gemini://backend:1966/x":      "gemini://backend:1966/x",
		"gemini://backend.evil.org/x/": "gemini://backend.evil.org/x/",
	} {
		if got := p.rewriteRedirect(meta); got != want {
			t.Errorf("rewriteRedirect(%q) = %q, want %q", meta, got, want)
		}
	}
}

func TestProxyRedirectEndToEnd(t *testing.T) {
	var u *testUpstream
	u = startUpstream(t, tofutest.LoopbackCert(t, "backend"), func(c net.Conn, _ *bufio.Reader, _ string) {
		fmt.Fprintf(c, "31 gemini://backend:%d/dir/\r\n", u.port)
	})
	h := newTestProxy(t, ProxyConfig{
		Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), SNI: "backend",
		StripPrefix: "/app/", Pins: tofu.NewMemStore(),
	})
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/app/dir")); err != nil {
		t.Fatal(err)
	}
	if w.status != 31 || w.meta != "/app/dir/" {
		t.Fatalf("got %d %q, want 31 /app/dir/", w.status, w.meta)
	}
}

func TestProxyTitan(t *testing.T) {
	payload := make([]byte, 300<<10)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, br *bufio.Reader, line string) {
		_, params, _ := strings.Cut(line, ";size=")
		sizeStr, _, _ := strings.Cut(params, ";")
		n, _ := strconv.Atoi(sizeStr)
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			got <- nil
			return
		}
		got <- b
		io.WriteString(c, "20 text/gemini\r\nstored\n")
	})
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore()})
	r := geminiRequest(t, "/upload/f.txt")
	r.Scheme = SchemeTitan
	r.Titan = TitanParams{Size: int64(len(payload)), MIME: "text/plain;charset=utf-8", Token: "s3cr;t=x y"}
	// The body holds more than Size bytes: only Size may be forwarded.
	r.Body = io.MultiReader(bytes.NewReader(payload), strings.NewReader("EXTRA"))
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, r); err != nil {
		t.Fatal(err)
	}
	seen := u.next(t)
	want := "titan://127.0.0.1:" + strconv.Itoa(u.port) + "/upload/f.txt;size=" + strconv.Itoa(len(payload)) +
		";mime=text/plain%3Bcharset%3Dutf-8;token=s3cr%3Bt%3Dx%20y"
	if seen.line != want {
		t.Errorf("titan line %q, want %q", seen.line, want)
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("upstream got %d bytes, not the payload", len(b))
	}
	if w.status != 20 || w.body.String() != "stored\n" {
		t.Errorf("response %d %q %q", w.status, w.meta, w.body.String())
	}
	// Exactly Size bytes were read from the client's body.
	rest, _ := io.ReadAll(r.Body)
	if string(rest) != "EXTRA" {
		t.Errorf("proxy read past Size: %q left", rest)
	}
}

func TestProxyTitanShortBody(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, br *bufio.Reader, _ string) {
		io.Copy(io.Discard, br)
	})
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore()})
	r := geminiRequest(t, "/up")
	r.Scheme = SchemeTitan
	r.Titan = TitanParams{Size: 100, MIME: "text/plain"}
	r.Body = strings.NewReader("only ten b")
	var w recorder
	err := h.ServeGemini(context.Background(), &w, r)
	if got := reasonOf(err); got != ReasonBadRequest {
		t.Fatalf("reason %v (%v), want bad_request", got, err)
	}
	if w.HeaderWritten() {
		t.Error("header written")
	}
}

func TestProxyUpstreamKeyChange(t *testing.T) {
	cert1, cert2 := tofutest.LoopbackCert(t, "x"), tofutest.LoopbackCert(t, "x")
	u := startUpstream(t, cert1, answer("20 text/gemini\r\nok"))
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore()})
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/")); err != nil {
		t.Fatal(err)
	}
	u.next(t)
	// Another server (or the same one restarted with a new key): new
	// certificate and new session-ticket keys, so nothing can be resumed.
	// (A server that could resume holds the secret of a session whose
	// certificate was checked; the pin is checked again at the next full
	// handshake.)
	u.cert.Store(&cert2)
	u.tls.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
	w.reset()
	err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/"))
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonUpstreamUntrusted || e.Msg != "upstream certificate changed" {
		t.Fatalf("err = %v, want upstream_untrusted", err)
	}
	if !errors.Is(err, ErrPinMismatch) {
		t.Error("cause does not wrap ErrPinMismatch")
	}
	if w.HeaderWritten() {
		t.Error("header written")
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, up := range []string{"gemini://" + addr, "tcp://" + addr} {
		h := newTestProxy(t, ProxyConfig{Upstream: up, Pins: tofu.NewMemStore()})
		var w recorder
		err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/"))
		if got := reasonOf(err); got != ReasonUpstreamError {
			t.Errorf("%s: reason %v (%v), want upstream_error", up, got, err)
		}
		if w.HeaderWritten() {
			t.Errorf("%s: header written", up)
		}
	}
}

func TestProxyUpstreamTimeout(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, br *bufio.Reader, _ string) {
		io.Copy(io.Discard, br)
	})
	h := newTestProxy(t, ProxyConfig{
		Upstream: "gemini://127.0.0.1:" + strconv.Itoa(u.port), Pins: tofu.NewMemStore(),
		ReadTimeout: 100 * time.Millisecond,
	})
	var w recorder
	err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/"))
	if got := reasonOf(err); got != ReasonUpstreamError || !errors.Is(err, ErrTimeout) {
		t.Fatalf("reason %v (%v), want upstream_error wrapping ErrTimeout", got, err)
	}
}

func TestProxyMalformedUpstreamHeader(t *testing.T) {
	for name, raw := range map[string]string{
		"bare LF":        "20 text/gemini\n",
		"no space":       "20text/gemini\r\n",
		"three digits":   "200 text/gemini\r\n",
		"status 70":      "70 x\r\n",
		"status 05":      "05 x\r\n",
		"meta too long":  "20 " + strings.Repeat("a", MaxMeta+1) + "\r\n",
		"not UTF-8":      "20 text/\xc3\x28\r\n",
		"empty response": "",
		"no CRLF at all": "20 text/gemini",
		"HTTP response":  "HTTP/1.1 400 Bad Request\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				var up string
				if tcp {
					u := startRawUpstream(t, func(c net.Conn) {
						bufio.NewReader(c).ReadString('\n')
						io.WriteString(c, raw)
					})
					up = "tcp://" + u.addr
				} else {
					u := startUpstream(t, tofutest.LoopbackCert(t, "x"), answer(raw))
					up = "gemini://" + u.addr
				}
				h := newTestProxy(t, ProxyConfig{Upstream: up, Pins: tofu.NewMemStore()})
				var w recorder
				err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/"))
				if got := reasonOf(err); got != ReasonUpstreamError || !errors.Is(err, ErrBadHeader) {
					t.Errorf("%s: reason %v (%v), want upstream_error wrapping ErrBadHeader", up, got, err)
				}
				if w.HeaderWritten() {
					t.Errorf("%s: header written", up)
				}
			}
		})
	}
}

func TestProxyPlainTCP(t *testing.T) {
	u := startRawUpstream(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "20 text/plain\r\n%s", line)
	})
	h := newTestProxy(t, ProxyConfig{Upstream: "tcp://" + u.addr, SNI: "capsule.example"})
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/a")); err != nil {
		t.Fatal(err)
	}
	want := "gemini://capsule.example:" + strconv.Itoa(u.port) + "/a\r\n"
	if w.body.String() != want {
		t.Fatalf("upstream got %q, want %q", w.body.String(), want)
	}
}

func TestNewProxyConfigErrors(t *testing.T) {
	pins := tofu.NewMemStore()
	for name, cfg := range map[string]ProxyConfig{
		"empty":                   {},
		"http scheme":             {Upstream: "http://h:80", Pins: pins},
		"tcp without port":        {Upstream: "tcp://h"},
		"gemini without pins":     {Upstream: "gemini://h"},
		"proxy protocol on TLS":   {Upstream: "gemini://h", Pins: pins, ProxyProtocol: true},
		"path":                    {Upstream: "gemini://h/x", Pins: pins},
		"query":                   {Upstream: "gemini://h?x", Pins: pins},
		"userinfo":                {Upstream: "gemini://u@h", Pins: pins},
		"bad port":                {Upstream: "tcp://h:99999"},
		"no host":                 {Upstream: "tcp://:1965"},
		"strip prefix relative":   {Upstream: "tcp://h:1", StripPrefix: "app/"},
		"strip prefix upper-case": {Upstream: "tcp://h:1", StripPrefix: "/App/"},
		"bad sni":                 {Upstream: "tcp://h:1", SNI: "a b"},
	} {
		if _, err := NewProxy(cfg); err == nil {
			t.Errorf("%s: NewProxy(%+v) succeeded", name, cfg)
		}
	}
	for _, cfg := range []ProxyConfig{
		{Upstream: "gemini://h", Pins: pins},
		{Upstream: "gemini://[::1]:1966", Pins: pins},
		{Upstream: "tcp://10.0.0.1:1965", ProxyProtocol: true, StripPrefix: "/app"},
	} {
		if _, err := NewProxy(cfg); err != nil {
			t.Errorf("NewProxy(%+v): %v", cfg, err)
		}
	}
}

func TestProxyRequestLineTooLong(t *testing.T) {
	h := newTestProxy(t, ProxyConfig{Upstream: "tcp://" + strings.Repeat("a", 60) + ".example:1"})
	r := geminiRequest(t, "/"+strings.Repeat("p", MaxRequestLine-30))
	var w recorder
	if got := reasonOf(h.ServeGemini(context.Background(), &w, r)); got != ReasonBadRequest {
		t.Fatalf("reason %v, want bad_request", got)
	}
}

func TestProxyCancelledDuringBody(t *testing.T) {
	u := startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, br *bufio.Reader, _ string) {
		io.WriteString(c, "20 text/plain\r\nfirst")
		io.Copy(io.Discard, br)
	})
	h := newTestProxy(t, ProxyConfig{Upstream: "gemini://" + u.addr, Pins: tofu.NewMemStore()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnWrite{cancel: cancel}
	err := h.ServeGemini(ctx, w, geminiRequest(t, "/"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled after the header", err)
	}
	if !w.HeaderWritten() || w.body.String() != "first" {
		t.Errorf("got %d %q %q", w.status, w.meta, w.body.String())
	}
}

// cancelOnWrite cancels the request when the first body bytes arrive.
type cancelOnWrite struct {
	recorder
	cancel func()
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.cancel()
	return c.recorder.Write(p)
}

// proxySeen is what a PROXY-protocol upstream parsed.
type proxySeen struct {
	src, dst netip.AddrPort
	tlvs     map[byte][]byte
	line     string
	err      error
}

func startProxyProtoUpstream(t *testing.T) (*testUpstream, chan proxySeen) {
	t.Helper()
	ch := make(chan proxySeen, 4)
	u := startRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		s := parseProxyV2(br)
		if s.err == nil {
			line, err := br.ReadString('\n')
			s.line, s.err = strings.TrimSuffix(line, "\r\n"), err
		}
		ch <- s
		io.WriteString(c, "20 text/plain\r\nok")
	})
	return u, ch
}

func TestProxyProtocolV2(t *testing.T) {
	u, ch := startProxyProtoUpstream(t)
	h := newTestProxy(t, ProxyConfig{Upstream: "tcp://" + u.addr, ProxyProtocol: true})
	clientCert := tofutest.LoopbackCert(t, "alice")
	id := tofu.IdentityOf(clientCert.Leaf)

	tests := []struct {
		name   string
		remote netip.AddrPort
		cert   bool
		route  *Route
		verify uint32
	}{
		{name: "ipv4 client with certificate", remote: netip.MustParseAddrPort("203.0.113.7:40001"), cert: true, verify: 1},
		{name: "ipv4 client without certificate", remote: netip.MustParseAddrPort("198.51.100.2:5"), verify: 1},
		{name: "ipv6 client", remote: netip.MustParseAddrPort("[2001:db8::1]:443"), cert: true, verify: 1},
		{name: "verified by route", remote: netip.MustParseAddrPort("203.0.113.7:1"), cert: true,
			route: &Route{Prefix: "/", AllowedFingerprints: []tofu.Fingerprint{id.CertFingerprint()}}, verify: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := geminiRequest(t, "/p")
			r.Host, r.RemoteAddr, r.Route = "capsule.example", tc.remote, tc.route
			if tc.cert {
				r.ClientCert, r.ClientID = clientCert.Leaf, id
			}
			var w recorder
			if err := h.ServeGemini(context.Background(), &w, r); err != nil {
				t.Fatal(err)
			}
			s := <-ch
			if s.err != nil {
				t.Fatal(s.err)
			}
			if s.src != tc.remote {
				t.Errorf("source %v, want %v", s.src, tc.remote)
			}
			if want := netip.MustParseAddrPort(u.addr); s.dst != want {
				t.Errorf("destination %v, want %v", s.dst, want)
			}
			if s.line != "gemini://127.0.0.1:"+strconv.Itoa(u.port)+"/p" {
				t.Errorf("request line %q", s.line)
			}
			if got := string(s.tlvs[0x02]); got != "capsule.example" {
				t.Errorf("authority TLV %q", got)
			}
			ssl := s.tlvs[0x20]
			if len(ssl) < 5 {
				t.Fatalf("SSL TLV %x", ssl)
			}
			wantClient := byte(0x01)
			if tc.cert {
				wantClient |= 0x02 | 0x04
			}
			if ssl[0] != wantClient {
				t.Errorf("SSL client bits %#x, want %#x", ssl[0], wantClient)
			}
			if v := uint32(ssl[1])<<24 | uint32(ssl[2])<<16 | uint32(ssl[3])<<8 | uint32(ssl[4]); v != tc.verify {
				t.Errorf("SSL verify %d, want %d", v, tc.verify)
			}
			fp, hasFP := s.tlvs[0xE0]
			spki, hasSPKI := s.tlvs[0xE1]
			if !tc.cert {
				if hasFP || hasSPKI {
					t.Errorf("fingerprint TLVs without a certificate: %q %q", fp, spki)
				}
				return
			}
			if string(fp) != id.CertFingerprint().String() {
				t.Errorf("0xE0 = %q, want %q", fp, id.CertFingerprint())
			}
			if string(spki) != id.SPKIFingerprint().String() {
				t.Errorf("0xE1 = %q, want %q", spki, id.SPKIFingerprint())
			}
			if !bytes.Contains(ssl[5:], []byte("alice")) {
				t.Errorf("SSL TLV lacks the CN sub-TLV: %x", ssl)
			}
		})
	}
}

func TestProxyTitanRefusedEarly(t *testing.T) {
	// The upstream answers before reading the upload and then stops
	// reading: once the proxy's writes stall past the idle timeout, the
	// upstream's answer is still relayed.
	var u *testUpstream
	u = startUpstream(t, tofutest.LoopbackCert(t, "x"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "59 upload refused\r\n")
		<-u.done // never reads again
	})
	h := newTestProxy(t, ProxyConfig{
		Upstream: "gemini://" + u.addr, Pins: tofu.NewMemStore(),
		ReadTimeout: 300 * time.Millisecond,
	})
	const size = 64 << 20
	r := geminiRequest(t, "/up")
	r.Scheme = SchemeTitan
	r.Titan = TitanParams{Size: size, MIME: "application/octet-stream"}
	r.Body = io.LimitReader(zeros{}, size)
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, r); err != nil {
		t.Fatal(err)
	}
	if w.status != 59 || w.meta != "upload refused" {
		t.Fatalf("got %d %q, want the upstream's 59", w.status, w.meta)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
