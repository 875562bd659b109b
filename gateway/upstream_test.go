package gateway

import (
	"strings"
	"testing"

	"github.com/chimalli/chimalli/tofu"
)

func TestParseUpstreamURL(t *testing.T) {
	tests := []struct {
		in   string
		want UpstreamURL
		addr string
	}{
		{"gemini://127.0.0.1:1966", UpstreamURL{UpstreamGemini, "127.0.0.1", 1966}, "127.0.0.1:1966"},
		{"gemini://backend.example/", UpstreamURL{UpstreamGemini, "backend.example", 1965}, "backend.example:1965"},
		{"GEMINI://Backend.Example.:1965", UpstreamURL{UpstreamGemini, "backend.example", 1965}, "backend.example:1965"},
		{"gemini://bücher.example", UpstreamURL{UpstreamGemini, "xn--bcher-kva.example", 1965}, "xn--bcher-kva.example:1965"},
		{"tcp://[fd00::2]:7000", UpstreamURL{UpstreamTCP, "fd00::2", 7000}, "[fd00::2]:7000"},
		{"tcp://my_app:7000", UpstreamURL{UpstreamTCP, "my_app", 7000}, "my_app:7000"},
	}
	for _, tt := range tests {
		got, err := ParseUpstreamURL(tt.in)
		if err != nil || got != tt.want || got.Address() != tt.addr {
			t.Errorf("ParseUpstreamURL(%q) = %+v (%s), %v; want %+v (%s)", tt.in, got, got.Address(), err, tt.want, tt.addr)
		}
	}
	bad := map[string]string{
		"":                       "scheme must be gemini or tcp",
		"backend:1965":           "scheme must be gemini or tcp",
		"http://a:80":            "scheme must be gemini or tcp",
		"tcp://a":                "tcp:// needs a port",
		"gemini://a:0":           "port must be 1..65535",
		"gemini://a:99999":       "port must be 1..65535",
		"gemini://u@a:1965":      "only scheme, host and port",
		"gemini://a:1965/x":      "only scheme, host and port",
		"gemini://a:1965?q":      "only scheme, host and port",
		"gemini://a:1965#f":      "only scheme, host and port",
		"gemini:a:1965":          "only scheme, host and port",
		"gemini://:1965":         "missing host",
		"tcp://a b:1":            "not a URL",
		"gemini://-a.example":    `invalid host name "-a.example"`,
		"gemini://127.1":         `invalid host name "127.1"`,
		"tcp://[fe80::1%25lo]:1": "zones are not allowed",
	}
	for in, want := range bad {
		got, err := ParseUpstreamURL(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUpstreamURL(%q) = %+v, %v; want an error containing %q", in, got, err, want)
		}
	}
}

// NewProxy applies ParseUpstreamURL: what one refuses the other refuses,
// and a gemini:// upstream without a port is port 1965 in both.
func TestNewProxyUsesParseUpstreamURL(t *testing.T) {
	for _, in := range []string{"tcp://a", "gemini://127.1", "gemini://-a.example", "tcp://[fe80::1%25lo]:1"} {
		if _, err := NewProxy(ProxyConfig{Upstream: in, Pins: tofu.NewMemStore()}); err == nil {
			t.Errorf("NewProxy(%q) succeeded", in)
		}
	}
	h, err := NewProxy(ProxyConfig{Upstream: "tcp://My_App:7000"})
	if err != nil {
		t.Fatal(err)
	}
	if p := h.(*proxy); p.addr != "my_app:7000" || p.authority != "my_app:7000" {
		t.Errorf("addr %q authority %q, want my_app:7000", p.addr, p.authority)
	}
}
