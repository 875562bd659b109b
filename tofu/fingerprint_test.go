package tofu

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	hexLower = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hexUpper = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
)

// colonHex writes h as colon-separated byte pairs.
func colonHex(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func wantSum(t *testing.T) [sha256.Size]byte {
	t.Helper()
	var s [sha256.Size]byte
	for i := range s {
		j := byte(i % 8)
		s[i] = 2*j<<4 | (2*j + 1) // 0x01, 0x23, … as in hexLower
	}
	return s
}

func TestParseFingerprint(t *testing.T) {
	sum := wantSum(t)
	tests := []struct {
		name string
		in   string
		want Fingerprint // zero: want an error
	}{
		{"cert lower", "sha256:" + hexLower, Fingerprint{KindCert, sum}},
		{"cert upper hex", "sha256:" + hexUpper, Fingerprint{KindCert, sum}},
		{"cert upper prefix", "SHA256:" + hexLower, Fingerprint{KindCert, sum}},
		{"cert colons", "sha256:" + colonHex(hexLower), Fingerprint{KindCert, sum}},
		{"cert colons upper", "SHA256:" + colonHex(hexUpper), Fingerprint{KindCert, sum}},
		{"spki lower", "spki-sha256:" + hexLower, Fingerprint{KindSPKI, sum}},
		{"spki mixed case", "SPKI-Sha256:" + hexUpper, Fingerprint{KindSPKI, sum}},
		{"spki colons", "spki-sha256:" + colonHex(hexLower), Fingerprint{KindSPKI, sum}},
		{"surrounding space", " \tsha256:" + hexLower + "\r\n", Fingerprint{KindCert, sum}},

		{"empty", "", Fingerprint{}},
		{"no prefix", hexLower, Fingerprint{}},
		{"sha1 prefix", "sha1:" + hexLower[:40], Fingerprint{}},
		{"sha-256 prefix", "sha-256:" + hexLower, Fingerprint{}},
		{"prefix only", "sha256:", Fingerprint{}},
		{"spki without dash", "spkisha256:" + hexLower, Fingerprint{}},
		{"kelvin sign k", "sp\u212Ai-sha256:" + hexLower, Fingerprint{}},
		{"short", "sha256:" + hexLower[:62], Fingerprint{}},
		{"long", "sha256:" + hexLower + "00", Fingerprint{}},
		{"odd length", "sha256:" + hexLower[:63], Fingerprint{}},
		{"non hex", "sha256:" + strings.Repeat("g", 64), Fingerprint{}},
		{"colons misplaced", "sha256:" + hexLower[:1] + ":" + colonHex(hexLower)[1:94], Fingerprint{}},
		{"colons doubled", "sha256:" + strings.Replace(colonHex(hexLower), ":", "::", 1), Fingerprint{}},
		{"some colons", "sha256:01:23" + hexLower[4:], Fingerprint{}},
		{"trailing colon", "sha256:" + colonHex(hexLower) + ":", Fingerprint{}},
		{"inner space", "sha256:" + hexLower[:32] + " " + hexLower[32:], Fingerprint{}},
		{"unicode space", "\u00a0sha256:" + hexLower, Fingerprint{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFingerprint(tt.in)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("ParseFingerprint(%q) = %v, want error", tt.in, got)
				}
				if !errors.Is(err, ErrBadFingerprint) {
					t.Fatalf("error %v does not wrap ErrBadFingerprint", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFingerprint(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseFingerprint(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFingerprintErrorIsBounded(t *testing.T) {
	_, err := ParseFingerprint(strings.Repeat("x", 1<<20))
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 300 {
		t.Fatalf("error message is %d bytes long", len(err.Error()))
	}
}

func TestFingerprintString(t *testing.T) {
	sum := wantSum(t)
	tests := []struct {
		name string
		f    Fingerprint
		want string
	}{
		{"cert", Fingerprint{KindCert, sum}, "sha256:" + hexLower},
		{"spki", Fingerprint{KindSPKI, sum}, "spki-sha256:" + hexLower},
		{"zero", Fingerprint{}, ""},
		{"bad kind", Fingerprint{Kind: 9, Sum: sum}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFingerprintText(t *testing.T) {
	in := struct{ F Fingerprint }{Fingerprint{KindSPKI, wantSum(t)}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"F":"spki-sha256:` + hexLower + `"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var out struct{ F Fingerprint }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip = %v, want %v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"F":"md5:00"}`), &out); !errors.Is(err, ErrBadFingerprint) {
		t.Fatalf("unmarshal bad fingerprint: %v, want ErrBadFingerprint", err)
	}
}

func TestIdentityOf(t *testing.T) {
	key := newKey(t)
	c := selfSigned(t, key, "alice", 1)
	renewed := selfSigned(t, key, "alice", 2)
	other := selfSigned(t, newKey(t), "alice", 1)

	id := IdentityOf(c)
	if id.Cert != sha256.Sum256(c.Raw) || id.SPKI != sha256.Sum256(c.RawSubjectPublicKeyInfo) {
		t.Fatal("IdentityOf does not hash Raw and RawSubjectPublicKeyInfo")
	}
	if id.IsZero() {
		t.Fatal("identity of a certificate is zero")
	}
	if !(Identity{}).IsZero() {
		t.Fatal("zero identity is not IsZero")
	}
	if got := CertFingerprint(c.Raw); got != id.CertFingerprint() {
		t.Fatalf("CertFingerprint = %v, identity says %v", got, id.CertFingerprint())
	}
	if got := SPKIFingerprint(c); got != id.SPKIFingerprint() {
		t.Fatalf("SPKIFingerprint = %v, identity says %v", got, id.SPKIFingerprint())
	}
	rid := IdentityOf(renewed)
	if rid.Cert == id.Cert || rid.SPKI != id.SPKI {
		t.Fatal("a renewal with the same key should change Cert and keep SPKI")
	}
	oid := IdentityOf(other)
	if oid.SPKI == id.SPKI {
		t.Fatal("different keys share an SPKI fingerprint")
	}

	tests := []struct {
		name string
		f    Fingerprint
		want bool
	}{
		{"own cert", CertFingerprint(c.Raw), true},
		{"own spki", SPKIFingerprint(c), true},
		{"renewed spki", SPKIFingerprint(renewed), true},
		{"renewed cert", CertFingerprint(renewed.Raw), false},
		{"other cert", CertFingerprint(other.Raw), false},
		{"other spki", SPKIFingerprint(other), false},
		{"zero", Fingerprint{}, false},
		{"cert sum as spki", Fingerprint{Kind: KindSPKI, Sum: id.Cert}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := id.Matches(tt.f); got != tt.want {
				t.Fatalf("Matches(%v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:" + hexLower)
	f.Add("SPKI-SHA256:" + colonHex(hexUpper))
	f.Add("sha256:" + hexLower[:63])
	f.Add("spki-sha256:")
	f.Add("sp\u212Ai-sha256:" + hexLower)
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			if !errors.Is(err, ErrBadFingerprint) {
				t.Fatalf("error %v does not wrap ErrBadFingerprint", err)
			}
			return
		}
		out := fp.String()
		if out == "" {
			t.Fatalf("parsed %q to %v with an empty String()", s, fp)
		}
		back, err := ParseFingerprint(out)
		if err != nil {
			t.Fatalf("String() %q of parsed %q does not parse: %v", out, s, err)
		}
		if back != fp {
			t.Fatalf("round trip of %q: %v != %v", s, back, fp)
		}
		if out != strings.ToLower(out) || strings.Count(out, ":") != 1 {
			t.Fatalf("String() %q is not canonical", out)
		}
		// Parsing is case-insensitive and colon-tolerant: the canonical
		// form's digits are the input's, lower-cased, colons dropped.
		digits := out[strings.IndexByte(out, ':')+1:]
		norm := strings.ToLower(strings.ReplaceAll(strings.Trim(s, " \t\r\n"), ":", ""))
		if !bytes.HasSuffix([]byte(norm), []byte(digits)) {
			t.Fatalf("digits %q are not those of input %q", digits, s)
		}
	})
}

func BenchmarkIdentityOf(b *testing.B) {
	c := selfSigned(b, newKey(b), "bench", 1)
	b.ReportAllocs()
	var id Identity
	for b.Loop() {
		id = IdentityOf(c)
	}
	if id.IsZero() {
		b.Fatal("zero identity")
	}
}
