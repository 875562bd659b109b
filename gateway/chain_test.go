package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
	"github.com/chimalli/chimalli/tofu"
)

type fixedLimiter ratelimit.Result

func (f fixedLimiter) Allow(netip.Addr) ratelimit.Result { return ratelimit.Result(f) }

type failingPins struct{}

func (failingPins) Lookup(tofu.PinKey) (tofu.Pin, bool) { return tofu.Pin{}, false }
func (failingPins) Claim(context.Context, tofu.Pin) (tofu.Pin, error) {
	return tofu.Pin{}, errors.New("disk full")
}

func TestLayersAdmit(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name string
		l    Layers
		want Reason
	}{
		{"nothing configured", Layers{}, ReasonNone},
		{"denied", Layers{Access: NewAccessList(nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, true)}, ReasonAccessDenied},
		{"banned", Layers{Bans: banSet{addr: true}}, ReasonBanned},
		{"hard limit", Layers{Limiter: fixedLimiter{Verdict: ratelimit.Hard}}, ReasonRateLimitedHard},
		{"soft limit admits (44 needs a handshake)", Layers{Limiter: fixedLimiter{Verdict: ratelimit.Soft, RetryAfter: time.Second}}, ReasonNone},
		{"deny before ban", Layers{Access: NewAccessList(nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, true), Bans: banSet{addr: true}}, ReasonAccessDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.Admit(addr, time.Now()).Reason; got != tc.want {
				t.Fatalf("Admit = %v, want %v", got, tc.want)
			}
		})
	}
}

type abuseLog struct{ got []ratelimit.Result }

func (a *abuseLog) ReportAbuse(_ netip.Addr, r ratelimit.Result) { a.got = append(a.got, r) }

// Only refusals by the hard rate limit are reported as abuse.
func TestLayersAdmitReportsHardRefusals(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	for _, v := range []ratelimit.Verdict{ratelimit.Allow, ratelimit.Soft, ratelimit.Hard} {
		log := &abuseLog{}
		l := Layers{Limiter: fixedLimiter{Verdict: v, Violations: 41}, Abuse: log}
		l.Admit(addr, time.Now())
		want := 0
		if v == ratelimit.Hard {
			want = 1
		}
		if len(log.got) != want {
			t.Fatalf("verdict %v: %d reports, want %d", v, len(log.got), want)
		}
		if want == 1 && log.got[0].Violations != 41 {
			t.Fatalf("report carries %+v, want the limiter's result", log.got[0])
		}
	}
	banned := &abuseLog{}
	l := Layers{Bans: banSet{addr: true}, Limiter: fixedLimiter{Verdict: ratelimit.Hard}, Abuse: banned}
	l.Admit(addr, time.Now())
	if len(banned.got) != 0 {
		t.Fatal("a banned client must be refused before the limiter is asked, and not reported")
	}
}

func TestLayersDecide(t *testing.T) {
	dir := t.TempDir()
	_, certPEM, keyPEM := genPair(t, "example.org", time.Now(), 30)
	certFile, keyFile := writePair(t, dir, "example.org", certPEM, keyPEM)
	alice, _, _ := genPair(t, "alice", time.Now(), 30)
	aliceLeaf, _ := x509.ParseCertificate(alice.Certificate[0])
	bob, _, _ := genPair(t, "bob", time.Now(), 30)
	bobLeaf, _ := x509.ParseCertificate(bob.Certificate[0])
	old, _, _ := genPair(t, "old", time.Now().Add(-72*time.Hour), 1)
	oldLeaf, _ := x509.ParseCertificate(old.Certificate[0])
	ok := HandlerFunc(func(context.Context, ResponseWriter, *Request) error { return nil })
	v, err := compileHost(Host{
		Name: "example.org", Aliases: []string{"192.0.2.53"}, CertFile: certFile, KeyFile: keyFile, PublicPorts: []int{1965, 443},
		Routes: []Route{
			{Prefix: "/", Handler: ok},
			{Prefix: "/admin/", AllowedFingerprints: []tofu.Fingerprint{tofu.IdentityOf(aliceLeaf).SPKIFingerprint()}, Handler: ok},
			{Prefix: "/app/", TOFUClaim: true, Handler: ok},
			{Prefix: "/up/", Uploads: true, MaxUploadBytes: 100, Handler: ok},
		},
	}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	req := func(mod func(*Request)) *Request {
		r := &Request{Scheme: SchemeGemini, Host: "example.org", SNI: "example.org", Path: "/x"}
		if mod != nil {
			mod(r)
		}
		return r
	}
	withCert := func(c *x509.Certificate) func(*Request) {
		return func(r *Request) { r.ClientCert, r.ClientID = c, tofu.IdentityOf(c) }
	}
	soft := Admission{Limit: ratelimit.Result{Verdict: ratelimit.Soft, RetryAfter: 2500 * time.Millisecond}}
	tests := []struct {
		name   string
		pins   tofu.Store
		r      *Request
		adm    Admission
		want   Reason
		retry  int
		prefix string
	}{
		{"allowed", nil, req(nil), Admission{}, ReasonNone, 0, "/"},
		{"port listed", nil, req(func(r *Request) { r.Port = 443 }), Admission{}, ReasonNone, 0, "/"},
		{"port not listed", nil, req(func(r *Request) { r.Port = 8443 }), Admission{}, ReasonProxyRefused, 0, ""},
		{"host differs from SNI", nil, req(func(r *Request) { r.Host = "192.0.2.53" }), Admission{}, ReasonProxyRefused, 0, ""},
		{"alias without SNI", nil, req(func(r *Request) { r.Host, r.SNI = "192.0.2.53", "" }), Admission{}, ReasonNone, 0, "/"},
		{"unknown host", nil, req(func(r *Request) { r.Host, r.SNI = "example.net", "" }), Admission{}, ReasonProxyRefused, 0, ""},
		{"soft limit rounds up", nil, req(nil), soft, ReasonRateLimited, 3, ""},
		{"host check before soft limit", nil, req(func(r *Request) { r.Host = "example.net" }), soft, ReasonProxyRefused, 0, ""},
		{"longest prefix", nil, req(func(r *Request) { r.Path = "/admin/x" }), Admission{}, ReasonCertRequired, 0, "/admin/"},
		{"SPKI fingerprint admits", nil, req(func(r *Request) { r.Path = "/admin/"; withCert(aliceLeaf)(r) }), Admission{}, ReasonNone, 0, "/admin/"},
		{"other certificate", nil, req(func(r *Request) { r.Path = "/admin/"; withCert(bobLeaf)(r) }), Admission{}, ReasonCertNotAuthorized, 0, "/admin/"},
		{"expired before fingerprint", nil, req(func(r *Request) { r.Path = "/admin"; withCert(oldLeaf)(r) }), Admission{}, ReasonCertInvalid, 0, "/admin/"},
		{"titan refused on read-only route", nil, req(func(r *Request) { r.Scheme = SchemeTitan; r.Titan.Size = 1 }), Admission{}, ReasonUploadsRefused, 0, "/"},
		{"titan too large", nil, req(func(r *Request) { r.Scheme, r.Path, r.Titan.Size = SchemeTitan, "/up/f", 101 }), Admission{}, ReasonTooLarge, 0, "/up/"},
		{"titan at the limit", nil, req(func(r *Request) { r.Scheme, r.Path, r.Titan.Size = SchemeTitan, "/up/f", 100 }), Admission{}, ReasonNone, 0, "/up/"},
		{"claim without a pin store", nil, req(func(r *Request) { r.Path = "/app/"; withCert(aliceLeaf)(r) }), Admission{}, ReasonUnavailable, 0, "/app/"},
		{"claim with a failing store", failingPins{}, req(func(r *Request) { r.Path = "/app/"; withCert(aliceLeaf)(r) }), Admission{}, ReasonUnavailable, 0, "/app/"},
		{"claim", tofu.NewMemStore(), req(func(r *Request) { r.Path = "/app/"; withCert(aliceLeaf)(r) }), Admission{}, ReasonNone, 0, "/app/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Layers{Pins: tc.pins}
			d := l.Decide(context.Background(), v, tc.r, tc.adm)
			if d.Reason != tc.want || d.RetryAfter != tc.retry {
				t.Fatalf("Decide = %v retry %d, want %v retry %d", d.Reason, d.RetryAfter, tc.want, tc.retry)
			}
			if (d.Reason == ReasonUnavailable) != (d.Err != nil) {
				t.Fatalf("Decide = %v with Err %v: the cause of unavailable, and only that, is reported", d.Reason, d.Err)
			}
			got := ""
			if d.Route != nil {
				got = d.Route.Prefix
			}
			if got != tc.prefix {
				t.Fatalf("route %q, want %q", got, tc.prefix)
			}
		})
	}
}
