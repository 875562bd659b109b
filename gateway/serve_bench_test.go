package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// benchFetch runs one whole Gemini exchange against addr: TCP connect, a
// full TLS 1.3 handshake with X25519 (no resumption), the request, the
// response to EOF.
func benchFetch(b *testing.B, addr, line string, buf []byte) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", CurvePreferences: []tls.CurveID{tls.X25519}})
	if _, err := io.WriteString(tc, line); err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		m, err := tc.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	tc.Close()
	if !strings.HasPrefix(string(buf[:n]), "20 ") {
		b.Fatalf("response %q", buf[:min(n, 64)])
	}
}

// BenchmarkServe measures whole requests over loopback TLS, client and
// server in this process: the cost per request of everything the gateway
// does (accept, layers, handshake, parse, handler, close) plus a Go
// client's share. Compare runs with benchstat; absolute figures depend on
// the client's share.
func BenchmarkServe(b *testing.B) {
	// The upstream has no certificate routes, like the capsules a proxy
	// route fronts, so the proxy's anonymous sessions with it resume.
	up := startServer(b, func(c *Config) {
		c.KeyExchanges = []tls.CurveID{tls.X25519}
		c.Hosts[0].Routes = slices.DeleteFunc(c.Hosts[0].Routes, func(r Route) bool { return r.needsCert() })
	})
	px, err := NewProxy(ProxyConfig{Upstream: "gemini://" + up.addr, SNI: "localhost", StripPrefix: "/px/", Pins: tofu.NewMemStore()})
	if err != nil {
		b.Fatal(err)
	}
	gw := startServer(b, func(c *Config) {
		c.KeyExchanges = []tls.CurveID{tls.X25519}
		c.Hosts[0].Routes = append([]Route{{Prefix: "/px/", Handler: px}}, c.Hosts[0].Routes...)
	})
	for _, tc := range []struct{ name, line string }{
		{"docroot", "gemini://localhost/files/one.gmi\r\n"},
		{"proxy", "gemini://localhost/px/files/one.gmi\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					benchFetch(b, gw.addr, tc.line, buf)
				}
			})
		})
	}
}
