package gateway

import (
	"net/url"
	"testing"
)

// FuzzEscapeRule checks the gateway's one escape rule against the standard
// library's: a string is well escaped exactly when url.PathUnescape accepts
// it, and then decodePct (the prefix matcher's decoder, built on escapeAt)
// and decodeSegment (the canonicaliser's) decode it as url.PathUnescape does.
func FuzzEscapeRule(f *testing.F) {
	for _, s := range []string{"", "a", "%", "%2", "%2e", "%2E", "%zz", "a%2Fb", "%252e", "%%41", "%C3%A9", "%ff", "+%20+", "100%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := url.PathUnescape(s)
		if got := validPctEncoding(s); got != (err == nil) {
			t.Fatalf("validPctEncoding(%q) = %v, url.PathUnescape error %v", s, got, err)
		}
		if err != nil {
			return
		}
		if got := string(decodePct(s)); got != want {
			t.Fatalf("decodePct(%q) = %q, url.PathUnescape %q", s, got, want)
		}
		if got, err := decodeSegment(nil, s); err == nil && string(got) != want {
			t.Fatalf("decodeSegment(%q) = %q, url.PathUnescape %q", s, got, want)
		}
	})
}

// TestEscapeAtEveryPair checks escapeAt on every two bytes after a '%'
// against url.PathUnescape.
func TestEscapeAtEveryPair(t *testing.T) {
	for hi := range 256 {
		for lo := range 256 {
			s := string([]byte{'%', byte(hi), byte(lo)})
			want, err := url.PathUnescape(s)
			got, ok := escapeAt(s, 0)
			if ok != (err == nil) || ok && string([]byte{got}) != want {
				t.Fatalf("escapeAt(%q) = %q, %v; url.PathUnescape = %q, %v", s, got, ok, want, err)
			}
		}
	}
	if _, ok := escapeAt("%4", 0); ok {
		t.Fatal(`escapeAt("%4") accepted a short escape`)
	}
}
