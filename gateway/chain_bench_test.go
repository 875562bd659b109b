package gateway

import (
	"context"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
)

// benchChain builds the layers and host of a realistic node: a deny list,
// a ban view, the rate limiter, and routes with every certificate rule.
func benchChain(b *testing.B) (*Layers, *vhost, *Request) {
	b.Helper()
	dir := b.TempDir()
	_, certPEM, keyPEM := genPair(b, "example.org", time.Now(), 30)
	certFile, keyFile := writePair(b, dir, "example.org", certPEM, keyPEM)
	client, _, _ := genPair(b, "alice", time.Now(), 30)
	leaf, err := x509.ParseCertificate(client.Certificate[0])
	if err != nil {
		b.Fatal(err)
	}
	id := tofu.IdentityOf(leaf)
	ok := HandlerFunc(func(context.Context, ResponseWriter, *Request) error { return nil })
	v, err := compileHost(Host{
		Name: "example.org", CertFile: certFile, KeyFile: keyFile, PublicPorts: []int{1965},
		Routes: []Route{
			{Prefix: "/admin/", AllowedFingerprints: []tofu.Fingerprint{{Kind: tofu.KindCert}, id.CertFingerprint()}, TOFUClaim: true, Handler: ok},
			{Prefix: "/app/", TOFUClaim: true, Handler: ok},
			{Prefix: "/docs/", Handler: ok},
			{Prefix: "/", Handler: ok},
		},
	}, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	lim, err := ratelimit.New(ratelimit.Config{Capacity: 1e12, RefillPerSec: 1e12, HardFactor: 3, IPv4Prefix: 32, IPv6Prefix: 64, MaxKeys: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	deny := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.7/32")}
	l := &Layers{
		Access:  NewAccessList(nil, deny, true),
		Bans:    banSet{netip.MustParseAddr("192.0.2.99"): true},
		Limiter: lim,
		Pins:    tofu.NewMemStore(),
	}
	r := &Request{
		Scheme: SchemeGemini, Host: "example.org", Path: "/admin/reports/today.gmi", SNI: "example.org",
		RemoteAddr: netip.MustParseAddrPort("192.0.2.10:50000"), ClientCert: leaf, ClientID: id,
	}
	// First use claims /admin/ for alice; the benchmark measures the
	// steady state, where the pin is found and matches.
	if d := l.Decide(context.Background(), v, r, Admission{}); d.Reason != ReasonNone {
		b.Fatalf("setup decision: %v", d.Reason)
	}
	return l, v, r
}

// BenchmarkDecide runs every layer on an allowed request with a client
// certificate: access list, bans and the rate limiter at accept, then the
// host check, route match, certificate validity, fingerprint list and TOFU
// claim.
func BenchmarkDecide(b *testing.B) {
	l, v, r := benchChain(b)
	ctx := context.Background()
	addr := r.RemoteAddr.Addr()
	b.ReportAllocs()
	for b.Loop() {
		adm := l.Admit(addr, time.Now())
		if d := l.Decide(ctx, v, r, adm); d.Reason != ReasonNone {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkAdmitRefused is the accept-time decision for a denied address.
func BenchmarkAdmitRefused(b *testing.B) {
	l, _, _ := benchChain(b)
	addr := netip.MustParseAddr("203.0.113.9")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if l.Admit(addr, now).Reason != ReasonAccessDenied {
			b.Fatal("not refused")
		}
	}
}

// BenchmarkAdmitBanned is the accept-time decision for a banned address.
func BenchmarkAdmitBanned(b *testing.B) {
	l, _, _ := benchChain(b)
	addr := netip.MustParseAddr("192.0.2.99")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if l.Admit(addr, now).Reason != ReasonBanned {
			b.Fatal("not refused")
		}
	}
}
