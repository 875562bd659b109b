package tofu

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatPinLine(t *testing.T) {
	id := Identity{Cert: wantSum(t), SPKI: wantSum(t)}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	notAfter := time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC)
	tests := []struct {
		name  string
		key   PinKey
		want  string
		wantS string // the scope field
	}{
		{"upstream", PinKey{PinUpstream, "backend:1965"}, "upstream backend:1965 ", "backend:1965"},
		{"client", PinKey{PinClient, "example.org/app/"}, "client example.org/app/ ", "example.org/app/"},
		{"space and newline", PinKey{PinClient, "a b\nclient evil"}, "client a%20b%0Aclient%20evil ", "a%20b%0Aclient%20evil"},
		{"percent and hash", PinKey{PinClient, "x/%41#y"}, "client x/%2541%23y ", "x/%2541%23y"},
		{"non-ascii", PinKey{PinClient, "bücher.example/"}, "client b%C3%BCcher.example/ ", "b%C3%BCcher.example/"},
		{"tab and cr", PinKey{PinClient, "a\tb\r"}, "client a%09b%0D ", "a%09b%0D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pin{Key: tt.key, Identity: id, Created: created, NotAfter: notAfter}
			line, err := FormatPinLine(p)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want + "sha256:" + hexLower + " spki-sha256:" + hexLower +
				" 2025-01-02T02:04:05Z 2026-01-02T03:04:05.123Z"
			if line != want {
				t.Fatalf("FormatPinLine =\n%q, want\n%q", line, want)
			}
			if strings.ContainsAny(line, "\n\r\t") || len(strings.Fields(line)) != pinLineFields {
				t.Fatalf("line %q can be split or forged", line)
			}
			back, err := ParsePinLine(line)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(p) || back.Key != p.Key {
				t.Fatalf("ParsePinLine = %+v, want %+v", back, p)
			}
		})
	}
	if _, err := FormatPinLine(Pin{Key: PinKey{PinClient, "a/"}}); !errors.Is(err, ErrInvalidPin) {
		t.Fatalf("FormatPinLine of a zero identity: %v, want ErrInvalidPin", err)
	}
}

func TestParsePinLine(t *testing.T) {
	cert := "sha256:" + hexLower
	spki := "spki-sha256:" + hexLower
	zero := "sha256:" + strings.Repeat("0", 64)
	zeroSPKI := "spki-sha256:" + strings.Repeat("0", 64)
	ts := "2025-01-02T03:04:05Z"
	tests := []struct {
		name  string
		line  string
		scope string // "" means: want an error
	}{
		{"plain", "client a.org/ " + cert + " " + spki + " " + ts + " " + ts, "a.org/"},
		{"tabs and runs of spaces", "client\ta.org/  " + cert + "\t\t" + spki + " " + ts + " " + ts, "a.org/"},
		{"crlf", "upstream h:1 " + cert + " " + spki + " " + ts + " " + ts + "\r", "h:1"},
		{"upper case kind", "CLIENT a.org/ " + cert + " " + spki + " " + ts + " " + ts, "a.org/"},
		{"lower case escapes", "client a%2fb%c3%bc " + cert + " " + spki + " " + ts + " " + ts, "a/bü"},
		{"raw utf-8 scope", "client bü/ " + cert + " " + spki + " " + ts + " " + ts, "bü/"},
		{"colon fingerprints", "client a/ sha256:" + colonHex(hexUpper) + " " + spki + " " + ts + " " + ts, "a/"},
		{"offset time", "client a/ " + cert + " " + spki + " 2025-01-02T04:04:05+01:00 " + ts, "a/"},
		{"zero cert is fine with spki", "client a/ " + zero + " " + spki + " " + ts + " " + ts, "a/"},

		{"empty", "", ""},
		{"comment", "# client a/ " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"five fields", "client a/ " + cert + " " + spki + " " + ts, ""},
		{"seven fields", "client a/ b " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"unknown kind", "server a/ " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"fingerprints swapped", "client a/ " + spki + " " + cert + " " + ts + " " + ts, ""},
		{"bad fingerprint", "client a/ sha256:00 " + spki + " " + ts + " " + ts, ""},
		{"zero identity", "client a/ " + zero + " " + zeroSPKI + " " + ts + " " + ts, ""},
		{"truncated escape", "client a%4 " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"bad escape", "client a%zz " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"control byte", "client a\x00b " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"inner cr", "client a\rb " + cert + " " + spki + " " + ts + " " + ts, ""},
		{"bad created", "client a/ " + cert + " " + spki + " yesterday " + ts, ""},
		{"date only", "client a/ " + cert + " " + spki + " 2025-01-02 " + ts, ""},
		{"scope too long", "client " + strings.Repeat("a", MaxScopeLen+1) + " " + cert + " " + spki + " " + ts + " " + ts, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePinLine(tt.line)
			if tt.scope == "" {
				if err == nil {
					t.Fatalf("ParsePinLine(%q) = %+v, want error", tt.line, p)
				}
				if !errors.Is(err, ErrBadPinLine) {
					t.Fatalf("error %v does not wrap ErrBadPinLine", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePinLine(%q): %v", tt.line, err)
			}
			if p.Key.Scope != tt.scope {
				t.Fatalf("scope = %q, want %q", p.Key.Scope, tt.scope)
			}
			if p.Created.Location() != time.UTC || !p.Created.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
				t.Fatalf("created = %v", p.Created)
			}
		})
	}
}

func FuzzPinLine(f *testing.F) {
	cert := "sha256:" + hexLower
	spki := "spki-sha256:" + hexLower
	ts := "2025-01-02T03:04:05.123456789Z"
	f.Add("client example.org/app/ " + cert + " " + spki + " " + ts + " " + ts)
	f.Add("upstream backend:1965 " + cert + " " + spki + " " + ts + " 0001-01-01T00:00:00Z")
	f.Add("client a%20b%0A%25 " + cert + " " + spki + " " + ts + " " + ts + "\r")
	f.Add("CLIENT\tb\u00fc " + cert + " " + spki + " 2025-01-02T04:04:05+01:00 " + ts)
	f.Add("client a%4 " + cert + " " + spki + " " + ts + " " + ts)
	f.Fuzz(func(t *testing.T, line string) {
		p, err := ParsePinLine(line)
		if err != nil {
			if !errors.Is(err, ErrBadPinLine) {
				t.Fatalf("error %v does not wrap ErrBadPinLine", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed pin is invalid: %v", err)
		}
		out, err := FormatPinLine(p)
		if err != nil {
			t.Fatalf("parsed pin does not format: %v", err)
		}
		if strings.ContainsAny(out, "\n\r\t#") || strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			t.Fatalf("formatted line %q holds a byte that could forge or split a line", out)
		}
		back, err := ParsePinLine(out)
		if err != nil {
			t.Fatalf("formatted line %q does not parse: %v", out, err)
		}
		if back != p { // exact: both in UTC, no monotonic reading
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", line, back, p)
		}
		if again, _ := FormatPinLine(back); again != out {
			t.Fatalf("format is not stable: %q then %q", out, again)
		}
	})
}
