package gateway

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseResponseHeader(t *testing.T) {
	long := strings.Repeat("a", MaxMeta)
	tests := []struct {
		name   string
		line   string
		status int
		meta   string
		ok     bool
	}{
		{name: "success", line: "20 text/gemini", status: 20, meta: "text/gemini", ok: true},
		{name: "success with params", line: "20 text/gemini; lang=en", status: 20, meta: "text/gemini; lang=en", ok: true},
		{name: "no meta", line: "20", status: 20, ok: true},
		{name: "space then empty meta", line: "51 ", status: 51, ok: true},
		{name: "lowest status", line: "10 name?", status: 10, meta: "name?", ok: true},
		{name: "highest status", line: "69 x", status: 69, meta: "x", ok: true},
		{name: "redirect", line: "31 gemini://h/p", status: 31, meta: "gemini://h/p", ok: true},
		{name: "unicode meta", line: "51 introuvable ☹", status: 51, meta: "introuvable ☹", ok: true},
		{name: "meta of 1024 bytes", line: "20 " + long, status: 20, meta: long, ok: true},
		{name: "trailing space kept", line: "20 text/plain ", status: 20, meta: "text/plain ", ok: true},

		{name: "empty", line: ""},
		{name: "one digit", line: "2"},
		{name: "one digit and meta", line: "2 text/gemini"},
		{name: "three digits", line: "200 text/gemini"},
		{name: "status 09", line: "09 x"},
		{name: "status 00", line: "00 x"},
		{name: "status 70", line: "70 x"},
		{name: "status 99", line: "99 x"},
		{name: "letters", line: "2x text/gemini"},
		{name: "missing space", line: "20text/gemini"},
		{name: "tab separator", line: "20\ttext/gemini"},
		{name: "two spaces", line: "20  text/gemini"},
		{name: "meta of 1025 bytes", line: "20 " + long + "a"},
		{name: "invalid utf-8", line: "20 text/\xff"},
		{name: "overlong utf-8", line: "20 \xc0\xaf"},
		{name: "surrogate", line: "20 \xed\xa0\x80"},
		{name: "CR in meta", line: "20 text/gemini\r"},
		{name: "LF in meta", line: "20 a\nb"},
		{name: "NUL in meta", line: "20 a\x00b"},
		{name: "DEL in meta", line: "20 a\x7fb"},
		{name: "C1 control in meta", line: "20 a\u009bb"},
		{name: "leading space", line: " 20 x"},
		{name: "fullwidth digits", line: "２０ x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, meta, err := ParseResponseHeader([]byte(tc.line))
			if !tc.ok {
				if err == nil {
					t.Fatalf("accepted %q as %d %q", tc.line, status, meta)
				}
				if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("error %v does not wrap ErrBadHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused %q: %v", tc.line, err)
			}
			if status != tc.status || meta != tc.meta {
				t.Errorf("got %d %q, want %d %q", status, meta, tc.status, tc.meta)
			}
		})
	}
}

func FuzzResponseHeader(f *testing.F) {
	for _, s := range []string{
		"20 text/gemini", "20", "51 ", "31 /dir/", "10 Your name?", "44 60",
		"200 text/gemini", "20text/gemini", "20  x", "70 x", "09 x",
		"20 \xff", "20 a\u009b", "20 " + strings.Repeat("m", MaxMeta),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		status, meta, err := ParseResponseHeader(line)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		if status < 10 || status > 69 {
			t.Fatalf("accepted status %d", status)
		}
		if len(meta) > MaxMeta || !utf8.ValidString(meta) {
			t.Fatalf("accepted meta %q (%d bytes)", meta, len(meta))
		}
		if strings.ContainsAny(meta, "\r\n\x00") {
			t.Fatalf("accepted meta with CR, LF or NUL: %q", meta)
		}
		// Re-formatting the parsed header and parsing it again is stable.
		hdr := appendResponseHeader(nil, status, meta)
		if !bytes.HasSuffix(hdr, []byte("\r\n")) {
			t.Fatalf("formatted header %q lacks CRLF", hdr)
		}
		s2, m2, err := ParseResponseHeader(hdr[:len(hdr)-2])
		if err != nil || s2 != status || m2 != meta {
			t.Fatalf("round trip of %q: %d %q %v, want %d %q", hdr, s2, m2, err, status, meta)
		}
	})
}

func BenchmarkParseResponseHeader(b *testing.B) {
	line := []byte("20 text/gemini; charset=utf-8; lang=en")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseResponseHeader(line); err != nil {
			b.Fatal(err)
		}
	}
}
