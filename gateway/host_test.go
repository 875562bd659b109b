package gateway

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unsafe"
)

func TestNormalizeHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) // 3*64 + 61 = 253
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"normal", "example.org", "example.org"},
		{"single label", "localhost", "localhost"},
		{"upper-case", "ExAmple.ORG", "example.org"},
		{"trailing dot", "example.org.", "example.org"},
		{"upper-case and trailing dot", "ExAmple.ORG.", "example.org"},
		{"digits and hyphens", "a-1.b2.example", "a-1.b2.example"},
		{"hyphens in positions 3-4", "r3---sn-abc.example", "r3---sn-abc.example"},
		{"Unicode", "bücher.example", "xn--bcher-kva.example"},
		{"Unicode upper-case", "BÜCHER.example", "xn--bcher-kva.example"},
		{"punycode upper-case", "XN--BCHER-KVA.example", "xn--bcher-kva.example"},
		{"punycode mixed, trailing dot", "Xn--Bcher-Kva.EXAMPLE.", "xn--bcher-kva.example"},
		{"punycode already normal", "xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"fullwidth", "ｅｘａｍｐｌｅ．ｏｒｇ", "example.org"},
		{"ideographic full stop", "example。org", "example.org"},
		{"sharp s non-transitional", "ß.example", "xn--zca.example"},
		{"label of 63", label63 + ".example", label63 + ".example"},
		{"name of 253", name253, name253},
		{"name of 253 and a dot", name253 + ".", name253},
		{"IPv4", "127.0.0.1", "127.0.0.1"},
		{"IPv4 trailing dot", "127.0.0.1.", "127.0.0.1"},
		{"IPv4 fullwidth digits", "１２７．０．０．１", "127.0.0.1"},
		{"IPv6", "::1", "::1"},
		{"IPv6 long form", "0:0:0:0:0:0:0:1", "::1"},
		{"IPv6 upper-case", "FE80::1", "fe80::1"},
		{"IPv4-mapped IPv6", "::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"numeric inner label", "123.example", "123.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err != nil {
				t.Fatalf("NormalizeHost(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again, err := NormalizeHost(got); err != nil || again != got {
				t.Fatalf("not idempotent: NormalizeHost(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func TestNormalizeHostErrors(t *testing.T) {
	label64 := strings.Repeat("a", 64)
	name254 := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 62)
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"dot only", "."},
		{"two trailing dots", "example.org.."},
		{"empty label", "example..org"},
		{"leading dot", ".example.org"},
		{"label of 64", label64 + ".example"},
		{"name of 254", name254},
		{"leading hyphen", "-example.org"},
		{"trailing hyphen", "example-.org"},
		{"underscore", "ex_ample.org"},
		{"space", "exa mple.org"},
		{"slash", "example.org/"},
		{"percent", "ex%61mple.org"},
		{"at sign", "u@example.org"},
		{"brackets", "[::1]"},
		{"invalid punycode", "xn--zz.example"},
		{"punycode of nothing", "xn--.example"},
		{"punycode decoding to controls", "xn--a.example"},
		{"bidi violation", "aא.example"},
		{"disallowed rune", "exa\u2488mple.org"},
		{"short IPv4", "127.1"},
		{"hex IPv4", "0x7f.1"},
		{"hex IPv4 full", "0x7f.0.0.1"},
		{"octal IPv4", "0177.0.0.1"},
		{"leading zero IPv4", "127.000.0.1"},
		{"decimal IPv4", "2130706433"},
		{"hex IPv4 single", "0x7f000001"},
		{"IPv4 octet too large", "256.0.0.1"},
		{"five octets", "1.2.3.4.5"},
		{"numeric TLD", "example.123"},
		{"IPv6 zone", "fe80::1%eth0"},
		{"IPv6 bad", "::1::2"},
		{"IPv6 with port", "::1:99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err == nil {
				t.Fatalf("NormalizeHost(%q) = %q, want error", tt.in, got)
			}
			assertReason(t, err, ReasonBadRequest)
			assertClientMessage(t, err)
		})
	}
}

func TestNormalizeHostReturnsInputWhenNormal(t *testing.T) {
	h := strings.Clone("gemini.example.org")
	got, err := NormalizeHost(h)
	if err != nil || unsafe.StringData(got) != unsafe.StringData(h) {
		t.Fatalf("NormalizeHost(%q) = %q, %v; want the input itself", h, got, err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = NormalizeHost(h) }); n != 0 {
		t.Fatalf("NormalizeHost of a normal name allocates %v times", n)
	}
}

func TestAppendHostPort(t *testing.T) {
	tests := []struct {
		host string
		port int
		want string
	}{
		{"example.org", 0, "example.org"},
		{"example.org", 1965, "example.org:1965"},
		{"127.0.0.1", 1965, "127.0.0.1:1965"},
		{"::1", 0, "[::1]"},
		{"::1", 1965, "[::1]:1965"},
		{"fe80::1", 65535, "[fe80::1]:65535"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := string(appendHostPort([]byte("x"), tt.host, tt.port))
			if got != "x"+tt.want {
				t.Fatalf("appendHostPort(%q, %d) = %q, want %q", tt.host, tt.port, got[1:], tt.want)
			}
		})
	}
}

func TestRequestURL(t *testing.T) {
	r := Request{Scheme: SchemeTitan, Host: "::1", Port: 1965, Path: "/a", RawQuery: "q",
		Titan: TitanParams{Size: 1, Token: "secret"}}
	if got, want := r.URL(), "titan://[::1]:1965/a?q"; got != want {
		t.Fatalf("URL() = %q, want %q", got, want)
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"example.org", "ExAmple.ORG.", "bücher.example", "XN--BCHER-KVA.example",
		"127.0.0.1", "127.1", "0x7f.1", "::1", "fe80::1%eth0", "ｅｘａｍｐｌｅ．ｏｒｇ", "xn--zz.example", "a..b", "-a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		n, err := NormalizeHost(h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonBadRequest {
				t.Fatalf("NormalizeHost(%q): error %v has the wrong type or reason", h, err)
			}
			assertClientMessage(t, err)
			return
		}
		if again, err := NormalizeHost(n); err != nil || again != n {
			t.Fatalf("not idempotent: NormalizeHost(%q) = %q, then %q, %v", h, n, again, err)
		}
		if a, err := netip.ParseAddr(n); err == nil {
			if a.Zone() != "" || a.String() != n {
				t.Fatalf("NormalizeHost(%q) = %q, not a canonical address", h, n)
			}
		} else if !validLDHName(n) || isNumericLabel(lastLabel(n)) {
			t.Fatalf("NormalizeHost(%q) = %q, not an LDH name", h, n)
		}
		// The host survives the URL round trip.
		var r Request
		line := "gemini://" + string(appendHostPort(nil, n, 1965)) + "/"
		if err := ParseRequest([]byte(line), &r); err != nil || r.Host != n || r.Port != 1965 {
			t.Fatalf("NormalizeHost(%q) = %q, but %q parses to %q, %v", h, n, line, r.Host, err)
		}
	})
}

func BenchmarkNormalizeHost(b *testing.B) {
	for _, bc := range []struct{ name, host string }{
		{"normal", "gemini.example.org"},
		{"upper_trailing_dot", "Gemini.Example.ORG."},
		{"idna", "bücher.example"},
		{"ipv4", "192.0.2.1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeHost(bc.host); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
