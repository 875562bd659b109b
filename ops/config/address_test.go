package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/tofu"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"203.0.113.0/24", "203.0.113.0/24"},
		{"203.0.113.7/24", "203.0.113.0/24"},
		{"198.51.100.7", "198.51.100.7/32"},
		{" 198.51.100.7 ", "198.51.100.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:10.1.2.3", "10.1.2.3/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:0:0/96", "0.0.0.0/0"},
		{"::/0", "::/0"},
		{"0.0.0.0/0", "0.0.0.0/0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if err != nil || got.String() != tt.want {
				t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
	for _, in := range []string{"", "x", "10.0.0.0/33", "10.0.0/8", "fe80::1%eth0", "fe80::%eth0/64", "10.0.0.0/-1", "2001:db8::/129"} {
		if p, err := ParsePrefix(in); err == nil || !strings.Contains(err.Error(), "invalid CIDR") {
			t.Errorf("ParsePrefix(%q) = %v, %v; want an invalid CIDR error", in, p, err)
		}
	}
}

func TestAccessPrefixes(t *testing.T) {
	a := AccessConfig{Allow: []string{"10.0.0.1", "::ffff:192.0.2.0/120"}, Deny: []string{"bad", "2001:db8::/32"}}
	allow, err := a.AllowPrefixes()
	if err != nil || len(allow) != 2 || allow[1] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("AllowPrefixes = %v, %v", allow, err)
	}
	deny, err := a.DenyPrefixes()
	if err == nil || len(deny) != 1 {
		t.Errorf("DenyPrefixes = %v, %v; want the good entry and an error", deny, err)
	}
}

// FuzzParsePrefix checks that ParsePrefix never panics and that what it
// returns is valid, masked, unmapped and stable under a second parse.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "::ffff:10.0.0.0/104", "fe80::1%eth0", "10.0.0.0/33", "::ffff:1.2.3.4/95"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() {
			t.Fatalf("ParsePrefix(%q) = %v: not valid and masked", s, p)
		}
		if p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %v kept a zone", s, p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			t.Fatalf("ParsePrefix(%q) = %v: mapped prefix not unmapped", s, p)
		}
		again, err := ParsePrefix(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePrefix(%q) = %v, reparsed %v, %v", s, p, again, err)
		}
	})
}

func TestRouteUpstreamTarget(t *testing.T) {
	tests := []struct {
		in, sni string
		want    UpstreamTarget
	}{
		{"gemini://127.0.0.1:1966", "", UpstreamTarget{SchemeGemini, "127.0.0.1:1966", "127.0.0.1"}},
		{"gemini://backend.example:1965/", "", UpstreamTarget{SchemeGemini, "backend.example:1965", "backend.example"}},
		{"gemini://Backend.Example", "", UpstreamTarget{SchemeGemini, "backend.example:1965", "backend.example"}},
		{"tcp://[fd00::2]:7000", "", UpstreamTarget{SchemeTCP, "[fd00::2]:7000", "fd00::2"}},
		{"gemini://127.0.0.1:1966", "Molly.Example.org", UpstreamTarget{SchemeGemini, "127.0.0.1:1966", "molly.example.org"}},
	}
	for _, tt := range tests {
		r := RouteConfig{Upstream: tt.in, UpstreamSNI: tt.sni}
		got, err := r.UpstreamTarget()
		if err != nil || got != tt.want {
			t.Errorf("UpstreamTarget(%q, sni %q) = %+v, %v; want %+v", tt.in, tt.sni, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "backend:1965", "http://a:80", "tcp://a", "gemini://a:0", "gemini://a:99999",
		"gemini://u@a:1965", "gemini://a:1965/x", "gemini://a:1965?q", "gemini://a:1965#f", "tcp://a b:1", "gemini:a:1965", "gemini://:1965"} {
		if got, err := (RouteConfig{Upstream: in}).UpstreamTarget(); err == nil {
			t.Errorf("UpstreamTarget(%q) = %+v, want an error", in, got)
		}
	}
}

// An upstream accepted at load is accepted by the gateway at start, and one
// the gateway refuses is refused at load, by key: one rule for both.
func TestUpstreamRuleIsTheGateways(t *testing.T) {
	for _, up := range []string{
		"gemini://backend.example", "gemini://backend.example:1966", "GEMINI://Backend.Example.", "tcp://my_app:7000",
		"gemini://bücher.example", "tcp://[fd00::2]:7000",
		"tcp://backend.example", "gemini://127.1", "gemini://-a.example", "tcp://[fe80::1%25lo]:1", "gemini://a:0",
		"http://a:80", "gemini://a/x",
	} {
		cfg := validConfig()
		cfg.Gateway.Hosts[0].Routes = []RouteConfig{route("/", func(r *RouteConfig) { r.Docroot = ""; r.Upstream = up })}
		loadErr := cfg.Validate()
		_, startErr := gateway.NewProxy(gateway.ProxyConfig{Upstream: up, Pins: tofu.NewMemStore()})
		if (loadErr == nil) != (startErr == nil) {
			t.Errorf("upstream %q: Validate says %v, NewProxy says %v", up, loadErr, startErr)
		}
		if loadErr != nil && !strings.Contains(loadErr.Error(), "gateway.hosts[0].routes[0].upstream: ") {
			t.Errorf("upstream %q: error %v does not name the key", up, loadErr)
		}
	}
}

func TestRouteFingerprints(t *testing.T) {
	r := RouteConfig{AllowedFingerprints: []string{fpCert, fpSPKI}}
	fps, err := r.Fingerprints()
	if err != nil || len(fps) != 2 || fps[0].String() != fpCert || fps[1].String() != strings.ToLower(fpSPKI) {
		t.Errorf("Fingerprints = %v, %v", fps, err)
	}
}

// An IPv6 alias written in brackets, which validation accepts, reaches the
// gateway without them (the gateway refuses brackets).
func TestAliasHostsDropBrackets(t *testing.T) {
	h := HostConfig{Aliases: []string{"[2001:db8::1]", "::1", "www.example.org"}}
	got := h.AliasHosts()
	want := []string{"2001:db8::1", "::1", "www.example.org"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("AliasHosts() = %q, want %q", got, want)
		}
		if _, err := gateway.NormalizeHost(got[i]); err != nil {
			t.Fatalf("the gateway refuses %q: %v", got[i], err)
		}
	}
}
