package gateway

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	long1024 := "gemini://example.org/" + strings.Repeat("a", MaxRequestLine-len("gemini://example.org/"))
	tests := []struct {
		name string
		line string
		want Request
	}{
		{"typical", "gemini://example.org/docs/page.gmi",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/docs/page.gmi"}},
		{"no path", "gemini://example.org",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/"}},
		{"root", "gemini://example.org/",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/"}},
		{"upper-case scheme and host", "GEMINI://Example.ORG./a",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/a"}},
		{"mixed-case scheme", "GeMiNi://example.org/",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/"}},
		{"port", "gemini://example.org:1965/",
			Request{Scheme: SchemeGemini, Host: "example.org", Port: 1965, Path: "/"}},
		{"port 1", "gemini://example.org:1/",
			Request{Scheme: SchemeGemini, Host: "example.org", Port: 1, Path: "/"}},
		{"port 65535", "gemini://example.org:65535/",
			Request{Scheme: SchemeGemini, Host: "example.org", Port: 65535, Path: "/"}},
		{"port leading zero", "gemini://example.org:01965/",
			Request{Scheme: SchemeGemini, Host: "example.org", Port: 1965, Path: "/"}},
		{"empty port is no port", "gemini://example.org:/x",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/x"}},
		{"port without path", "gemini://example.org:1965",
			Request{Scheme: SchemeGemini, Host: "example.org", Port: 1965, Path: "/"}},
		{"IPv4", "gemini://127.0.0.1:1965/",
			Request{Scheme: SchemeGemini, Host: "127.0.0.1", Port: 1965, Path: "/"}},
		{"IPv6", "gemini://[::1]/",
			Request{Scheme: SchemeGemini, Host: "::1", Path: "/"}},
		{"IPv6 with port", "gemini://[::1]:1965/x",
			Request{Scheme: SchemeGemini, Host: "::1", Port: 1965, Path: "/x"}},
		{"IPv6 upper-case", "gemini://[FE80::0:1]/",
			Request{Scheme: SchemeGemini, Host: "fe80::1", Path: "/"}},
		{"IPv6 empty port", "gemini://[::1]:/",
			Request{Scheme: SchemeGemini, Host: "::1", Path: "/"}},
		{"IDN host", "gemini://bücher.example/",
			Request{Scheme: SchemeGemini, Host: "xn--bcher-kva.example", Path: "/"}},
		{"query", "gemini://example.org/search?hello%20world",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/search", RawQuery: "hello%20world"}},
		{"query without path", "gemini://example.org?q",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/", RawQuery: "q"}},
		{"empty query", "gemini://example.org/?",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/"}},
		{"query kept as received", "gemini://example.org/a?b/../c?d=é;%2F",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/a", RawQuery: "b/../c?d=é;%2F"}},
		{"path canonicalised", "gemini://example.org/a/./b/../%63",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/a/c"}},
		{"semicolon is a path character for gemini", "gemini://example.org/a;size=1",
			Request{Scheme: SchemeGemini, Host: "example.org", Path: "/a;size=1"}},
		{"titan", "titan://example.org/up/file.txt;size=10;mime=text/plain;token=abc",
			Request{Scheme: SchemeTitan, Host: "example.org", Path: "/up/file.txt",
				Titan: TitanParams{Size: 10, MIME: "text/plain", Token: "abc"}}},
		{"titan upper-case, root, defaults", "TITAN://example.org/;size=0",
			Request{Scheme: SchemeTitan, Host: "example.org", Path: "/",
				Titan: TitanParams{Size: 0, MIME: DefaultTitanMIME}}},
		{"titan with query", "titan://example.org/a;size=1?x",
			Request{Scheme: SchemeTitan, Host: "example.org", Path: "/a", RawQuery: "x",
				Titan: TitanParams{Size: 1, MIME: DefaultTitanMIME}}},
		{"1024 bytes accepted", long1024,
			Request{Scheme: SchemeGemini, Host: "example.org", Path: long1024[len("gemini://example.org"):]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tt.line), &r); err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.line, err)
			}
			if r != tt.want {
				t.Fatalf("ParseRequest(%q) =\n  %+v\nwant\n  %+v", tt.line, r, tt.want)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	long1025 := "gemini://example.org/" + strings.Repeat("a", MaxRequestLine+1-len("gemini://example.org/"))
	bad, proxy := ReasonBadRequest, ReasonProxyRefused
	tests := []struct {
		name string
		line string
		want Reason
	}{
		{"1025 bytes", long1025, bad},
		{"empty", "", bad},
		{"BOM", "\xef\xbb\xbfgemini://example.org/", bad},
		{"invalid UTF-8", "gemini://example.org/\xff", bad},
		{"invalid UTF-8 in host", "gemini://ex\xc3ample.org/", bad},
		{"overlong UTF-8 raw", "gemini://example.org/\xc0\xae", bad},
		{"NUL", "gemini://example.org/\x00", bad},
		{"TAB", "gemini://example.org/\t", bad},
		{"CR", "gemini://example.org/\r", bad},
		{"LF", "gemini://example.org/\n", bad},
		{"DEL", "gemini://example.org/\x7f", bad},
		{"space", "gemini://example.org/a b", bad},
		{"trailing space", "gemini://example.org/ ", bad},
		{"userinfo", "gemini://u@example.org/", bad},
		{"userinfo with password", "gemini://u:p@example.org/", bad},
		{"fragment", "gemini://example.org/#x", bad},
		{"empty fragment", "gemini://example.org/#", bad},
		{"relative path", "/foo", bad},
		{"network-path reference", "//example.org/", bad},
		{"scheme-less", "example.org/", bad},
		{"scheme-less host only", "example.org", bad},
		{"host and port without scheme", "example.org:1965/", bad},
		{"scheme starting with digit", "1gemini://example.org/", bad},
		{"empty scheme", "://example.org/", bad},
		{"no authority", "gemini:example.org/", bad},
		{"opaque other scheme", "mailto:someone@example.org", bad},
		{"https", "https://example.org/", proxy},
		{"gopher", "gopher://example.org/1/", proxy},
		{"upper-case other scheme", "HTTPS://example.org/", proxy},
		{"empty host", "gemini:///path", bad},
		{"empty host with port", "gemini://:1965/", bad},
		{"percent-encoded host", "gemini://ex%61mple.org/", bad},
		{"invalid host", "gemini://exa_mple.org/", bad},
		{"short IPv4", "gemini://127.1/", bad},
		{"hex IPv4", "gemini://0x7f.1/", bad},
		{"unbracketed IPv6", "gemini://::1/", bad},
		{"IPv6 zone", "gemini://[fe80::1%25eth0]/", bad},
		{"IPv6 raw zone", "gemini://[fe80::1%eth0]/", bad},
		{"bracketed name", "gemini://[example.org]/", bad},
		{"bracketed IPv4", "gemini://[127.0.0.1]/", bad},
		{"unclosed bracket", "gemini://[::1/", bad},
		{"junk after bracket", "gemini://[::1]x/", bad},
		{"bracket in name", "gemini://exa]mple.org/", bad},
		{"port 0", "gemini://example.org:0/", bad},
		{"port 00", "gemini://example.org:00/", bad},
		{"port 65536", "gemini://example.org:65536/", bad},
		{"huge port", "gemini://example.org:99999999999999999999999/", bad},
		{"negative port", "gemini://example.org:-1/", bad},
		{"plus port", "gemini://example.org:+80/", bad},
		{"letters in port", "gemini://example.org:19a5/", bad},
		{"two ports", "gemini://example.org:1:2/", bad},
		{"bad query escape", "gemini://example.org/?%zz", bad},
		{"truncated query escape", "gemini://example.org/?a%2", bad},
		{"bad path escape", "gemini://example.org/%zz", bad},
		{"traversal", "gemini://example.org/%2e%2e/etc/passwd", bad},
		{"encoded slash", "gemini://example.org/a%2fb", bad},
		{"titan without params", "titan://example.org/upload", bad},
		{"titan without size", "titan://example.org/upload;mime=text/plain", bad},
		{"titan bad size", "titan://example.org/upload;size=-1", bad},
		{"titan bad path", "titan://example.org/../x;size=1", bad},
		{"titan params in host", "titan://example.org;size=1", bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := Request{Scheme: SchemeTitan, Host: "keep", Path: "/keep"}
			r := before
			err := ParseRequest([]byte(tt.line), &r)
			if err == nil {
				t.Fatalf("ParseRequest(%q) = %+v, want error", tt.line, r)
			}
			assertReason(t, err, tt.want)
			if r != before {
				t.Fatalf("ParseRequest changed r on error: %+v", r)
			}
			assertClientMessage(t, err)
		})
	}
}

func TestParseRequestErrorsDoNotEchoInput(t *testing.T) {
	for _, line := range []string{
		"gemini://SECRETHOST_/",
		"gemini://u@SECRETHOST/",
		"gemini://example.org/SECRET%zz",
		"gemini://example.org/SECRET?%zz",
		"gemini://example.org:SECRET/",
		"https://SECRET/",
		"titan://example.org/a;size=1;token=SECRET%zz",
		"titan://example.org/a;size=1;token=SECRET%00",
		"titan://example.org/a;size=1;token=SECRET;token=SECRET",
		"titan://example.org/a;token=SECRET",
	} {
		var r Request
		err := ParseRequest([]byte(line), &r)
		if err == nil {
			t.Fatalf("ParseRequest(%q) succeeded", line)
		}
		if strings.Contains(strings.ToUpper(err.Error()), "SECRET") {
			t.Fatalf("ParseRequest(%q) error %q echoes the request", line, err)
		}
	}
}

func TestParseRequestAllocations(t *testing.T) {
	line := []byte("gemini://example.org/docs/page.gmi?q=1")
	var r Request
	n := testing.AllocsPerRun(100, func() {
		if err := ParseRequest(line, &r); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("ParseRequest of a canonical request allocates %v times, want at most 1", n)
	}
}

// clientMessages are all the messages ParseRequest, CanonicalPath,
// ParseTitanParams and NormalizeHost may send to a client. Fuzz targets
// check that every error carries one of them, so no error echoes its input.
var clientMessages = map[string]bool{
	"request too long":                      true,
	"empty request":                         true,
	"byte order mark not allowed":           true,
	"space or control character in request": true,
	"fragment not allowed":                  true,
	"invalid UTF-8 in request":              true,
	"not an absolute URL":                   true,
	"URL has no host":                       true,
	"scheme not served":                     true,
	"userinfo not allowed":                  true,
	"missing host":                          true,
	msgBadHost:                              true,
	"invalid port":                          true,
	"malformed percent-encoding in query":   true,
	"titan size missing":                    true,
	"duplicate titan parameter":             true,
	"titan parameter without value":         true,
	"invalid titan size":                    true,
	"invalid titan mime type":               true,
	"invalid titan token":                   true,
	msgPathNotAbsolute:                      true,
	msgPathBadEscape:                        true,
	msgPathBadChar:                          true,
	msgPathBadUTF8:                          true,
	msgPathAboveRoot:                        true,
	msgPathDoubleEscape:                     true,
	msgPathAmbiguous:                        true,
}

func assertClientMessage(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !clientMessages[e.Msg] {
		t.Fatalf("error message %q is not a known client-safe message", e.Msg)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, v := range loadTraversalCorpus(f) {
		if strings.HasPrefix(v.raw, "/") {
			f.Add([]byte("gemini://example.org" + v.raw))
			f.Add([]byte("titan://example.org" + v.raw + ";size=1"))
		} else {
			f.Add([]byte(v.raw))
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Request
		err := ParseRequest(line, &r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Reason != ReasonBadRequest && e.Reason != ReasonProxyRefused) {
				t.Fatalf("ParseRequest(%q): error %v has the wrong type or reason", line, err)
			}
			assertClientMessage(t, err)
			if r != (Request{}) {
				t.Fatalf("ParseRequest(%q) changed r on error", line)
			}
			return
		}
		if len(line) > MaxRequestLine {
			t.Fatalf("ParseRequest accepted %d bytes", len(line))
		}
		if r.Scheme != SchemeGemini && r.Scheme != SchemeTitan {
			t.Fatalf("ParseRequest(%q): scheme %v", line, r.Scheme)
		}
		if c, err := CanonicalPath(r.Path); err != nil || c != r.Path {
			t.Fatalf("ParseRequest(%q): path %q is not canonical (%q, %v)", line, r.Path, c, err)
		}
		if msg := checkCanonicalForm(r.Path); msg != "" {
			t.Fatalf("ParseRequest(%q): path %q: %s", line, r.Path, msg)
		}
		if h, err := NormalizeHost(r.Host); err != nil || h != r.Host {
			t.Fatalf("ParseRequest(%q): host %q is not normalised (%q, %v)", line, r.Host, h, err)
		}
		if r.Port < 0 || r.Port > 65535 {
			t.Fatalf("ParseRequest(%q): port %d", line, r.Port)
		}
		if r.Scheme == SchemeTitan && (r.Titan.Size < 0 || r.Titan.Size > MaxTitanSize || r.Titan.MIME == "") {
			t.Fatalf("ParseRequest(%q): titan params %+v", line, r.Titan)
		}
		if r.Scheme == SchemeGemini && r.Titan != (TitanParams{}) {
			t.Fatalf("ParseRequest(%q): gemini request with titan params", line)
		}
		// The canonical URL re-parses to the same fields.
		again := "gemini://" + string(appendHostPort(nil, r.Host, r.Port)) + r.Path
		if r.RawQuery != "" {
			again += "?" + r.RawQuery
		}
		if len(again) > MaxRequestLine {
			return
		}
		var r2 Request
		if err := ParseRequest([]byte(again), &r2); err != nil {
			t.Fatalf("ParseRequest(%q) ok, but its canonical form %q fails: %v", line, again, err)
		}
		if r2.Host != r.Host || r2.Port != r.Port || r2.Path != r.Path || r2.RawQuery != r.RawQuery {
			t.Fatalf("ParseRequest(%q) = %+v, but %q re-parses to %+v", line, r, again, r2)
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"gemini", "gemini://example.org/docs/page.gmi"},
		{"titan", "titan://example.org/uploads/notes.gmi;size=1234;mime=text/gemini;token=s3cr3t"},
		{"gemini_needs_work", "GEMINI://Example.ORG.:1965/docs/./%70age.gmi?x=%20y"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var r Request
			for b.Loop() {
				if err := ParseRequest(line, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
