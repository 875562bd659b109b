package bench

import (
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		line   string
		status int
		ok     bool
	}{
		{"success with meta", "20 text/gemini; lang=en", 20, true},
		{"no meta", "51", 51, true},
		{"empty meta", "44 ", 44, true},
		{"input", "10 name?", 10, true},
		{"cert required", "60 need a cert", 60, true},
		{"longest meta", "20 " + strings.Repeat("m", 1024), 20, true},
		{"meta too long", "20 " + strings.Repeat("m", 1025), 0, false},
		{"one digit", "2", 0, false},
		{"first digit 0", "00 x", 0, false},
		{"first digit 7", "70 x", 0, false},
		{"letters", "ab cd", 0, false},
		{"three digits", "200 OK", 0, false},
		{"tab separator", "20\ttext/gemini", 0, false},
		{"stray CR", "20 te\rxt", 0, false},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ok := parseHeader([]byte(tc.line))
			if status != tc.status || ok != tc.ok {
				t.Errorf("parseHeader(%q) = %d, %v, want %d, %v", tc.line, status, ok, tc.status, tc.ok)
			}
		})
	}
}

func TestErrorKindNames(t *testing.T) {
	want := []string{"dial", "tls", "write", "read_header", "bad_header", "timeout", "read_body", "cert_changed"}
	for k := range numKinds {
		if k.String() != want[k] {
			t.Errorf("kind %d = %q, want %q", k, k, want[k])
		}
	}
	if numKinds.String() != "unknown" {
		t.Errorf("out-of-range kind = %q", numKinds.String())
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"20 text/gemini", "51", "31 gemini://x/", "2", "99 x", "20\tx", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		status, ok := parseHeader(line)
		if !ok {
			if status != 0 {
				t.Fatalf("status %d with ok=false", status)
			}
			return
		}
		if status < 10 || status > 69 {
			t.Fatalf("status %d out of range for %q", status, line)
		}
		if int(line[0]-'0')*10+int(line[1]-'0') != status {
			t.Fatalf("status %d does not match %q", status, line[:2])
		}
		if len(line) > 2+1+1024 || (len(line) > 2 && line[2] != ' ') {
			t.Fatalf("accepted malformed header %q", line)
		}
	})
}
