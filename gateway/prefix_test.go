package gateway

import (
	"errors"
	"strings"
	"testing"
)

func TestPrefixMatch(t *testing.T) {
	tests := []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/", true},
		{"/", "/anything/at/all", true},
		{"/", "/%EF%BD%81dmin", true},
		{"/admin/", "/admin", true},
		{"/admin/", "/admin/", true},
		{"/admin/", "/admin/x", true},
		{"/admin/", "/admin/x/y/", true},
		{"/admin/", "/administrator", false},
		{"/admin/", "/admin-x", false},
		{"/admin/", "/admi", false},
		{"/admin/", "/", false},
		{"/admin/", "/x/admin", false},
		{"/admin/", "/public/admin/", false},
		// ASCII case.
		{"/admin/", "/ADMIN", true},
		{"/admin/", "/AdMiN/x", true},
		// Trailing dots and spaces.
		{"/admin/", "/admin./x", true},
		{"/admin/", "/admin../", true},
		{"/admin/", "/Admin%20/", true},
		{"/admin/", "/admin%20", true},
		{"/admin/", "/admin.%20./x", true},
		{"/admin/", "/admin%20x", false},
		{"/admin/", "/admin.x", false},
		// Path parameters.
		{"/admin/", "/admin;x=1/", true},
		{"/admin/", "/admin;", true},
		{"/admin/", "/ADMIN.;jsessionid=1/x", true},
		// Non-ASCII look-alikes.
		{"/admin/", "/%EF%BD%81dmin", true},                                  // fullwidth a
		{"/admin/", "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/", true}, // fullwidth admin
		{"/admin/", "/%EF%BC%A1DMIN/x", true},                                // fullwidth A
		{"/admin/", "/adm%C4%B1n", true},                                     // dotless i
		{"/admin/", "/adm%C4%B0n", true},                                     // dotted capital I
		{"/admin/", "/admin%C2%A0/", true},                                   // no-break space
		{"/admin/", "/admin%EF%BC%8E", true},                                 // fullwidth full stop
		{"/admin/", "/admin%EF%BC%9Bx", true},                                // fullwidth semicolon
		{"/admin/", "/%D0%B0dmin", false},                                    // Cyrillic a: no backend folds it
		{"/admin/", "/%C3%A1dmin", false},                                    // a with acute
		{"/secret/", "/%C5%BFecret", true},                                   // long s
		{"/kelvin/", "/%E2%84%AAelvin", true},                                // Kelvin sign
		// Multi-segment prefixes.
		{"/a/b/", "/a/b", true},
		{"/a/b/", "/A/B./c", true},
		{"/a/b/", "/a", false},
		{"/a/b/", "/a/", false},
		{"/a/b/", "/a/bc", false},
		// Non-ASCII prefixes.
		{"/caf%C3%A9/", "/caf%C3%A9/menu", true},
		{"/caf%C3%A9/", "/CAF%C3%89", true},
		{"/caf%C3%A9/", "/cafe", false},
		// Encoded ASCII in the path, defensively (canonical paths have none).
		{"/admin/", "/%61dmin", true},
		{"/my%20docs/", "/MY%20DOCS/x", true},
		// Malformed input.
		{"", "/admin", false},
		{"admin/", "/admin", false},
		{"/admin/", "", false},
		{"/admin/", "admin", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+" "+tt.path, func(t *testing.T) {
			if got := PrefixMatch(tt.prefix, tt.path); got != tt.want {
				t.Fatalf("PrefixMatch(%q, %q) = %v, want %v", tt.prefix, tt.path, got, tt.want)
			}
		})
	}
}

func TestPrefixMatchASCIIDoesNotAllocate(t *testing.T) {
	for _, path := range []string{"/admin/x", "/ADMIN./x", "/admin;x=1/", "/administrator", "/Admin%20/"} {
		if n := testing.AllocsPerRun(100, func() { PrefixMatch("/admin/", path) }); n != 0 {
			t.Errorf("PrefixMatch(/admin/, %q) allocates %v times", path, n)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"/", true},
		{"/admin/", true},
		{"/a/b/", true},
		{"/my%20docs/", true},
		{"/caf%C3%A9/", true},
		{"/v1.2/", true},
		{"", false},
		{"admin/", false},
		{"/admin", false},
		{"/Admin/", false},
		{"/admin//", false},
		{"/a/../b/", false},
		{"/./", false},
		{"/%61dmin/", false},
		{"/caf%c3%a9/", false},
		{"/CAF%C3%89/", false},
		{"/%EF%BD%81dmin/", false},
		{"/admin;x/", false},
		{"/admin./", false},
		{"/admin%20/", false},
		{"/admin%zz/", false},
		{"/a b/", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			err := ValidPrefix(tt.prefix)
			if tt.ok && err != nil {
				t.Fatalf("ValidPrefix(%q): %v", tt.prefix, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("ValidPrefix(%q) = nil, want error", tt.prefix)
				}
				if !errors.Is(err, ErrInvalidPrefix) {
					t.Fatalf("ValidPrefix(%q) = %v, not ErrInvalidPrefix", tt.prefix, err)
				}
			}
		})
	}
}

// refPrefixMatch is PrefixMatch written the slow, obvious way: every
// segment goes through foldSegment.
func refPrefixMatch(prefix, path string) bool {
	ps := strings.Split(strings.Trim(prefix, "/"), "/")
	if prefix == "/" {
		return true
	}
	qs := strings.Split(path[1:], "/")
	if len(qs) < len(ps) {
		return false
	}
	for i := range ps {
		if foldSegment(ps[i]) != foldSegment(qs[i]) {
			return false
		}
	}
	return true
}

func FuzzPrefixMatch(f *testing.F) {
	for _, v := range loadTraversalCorpus(f) {
		if strings.HasPrefix(v.raw, "/") {
			f.Add("/admin/", v.raw)
		}
	}
	f.Add("/", "/x")
	f.Add("/a/b/", "/A/b./c")
	f.Add("/caf%C3%A9/", "/CAF%C3%89")
	f.Fuzz(func(t *testing.T, prefix, raw string) {
		_ = PrefixMatch(prefix, raw) // no panic on any input
		if ValidPrefix(prefix) != nil {
			return
		}
		path, err := CanonicalPath(raw)
		if err != nil {
			return
		}
		m := PrefixMatch(prefix, path)
		if want := refPrefixMatch(prefix, path); m != want {
			t.Fatalf("PrefixMatch(%q, %q) = %v, reference says %v", prefix, path, m, want)
		}
		if !PrefixMatch(prefix, prefix) || (prefix != "/" && !PrefixMatch(prefix, strings.TrimSuffix(prefix, "/"))) {
			t.Fatalf("prefix %q does not match itself", prefix)
		}
		if !PrefixMatch("/", path) {
			t.Fatalf("PrefixMatch(/, %q) = false", path)
		}
		if up := strings.ToUpper(path); PrefixMatch(prefix, up) != m {
			t.Fatalf("PrefixMatch(%q) differs for %q and %q", prefix, path, up)
		}
		if m {
			// Anything below a match matches, and so does every shorter prefix.
			below := strings.TrimSuffix(path, "/") + "/x"
			if !PrefixMatch(prefix, below) {
				t.Fatalf("PrefixMatch(%q, %q) but not %q", prefix, path, below)
			}
			for p := prefix; p != "/"; {
				p = p[:strings.LastIndexByte(p[:len(p)-1], '/')+1]
				if !PrefixMatch(p, path) {
					t.Fatalf("PrefixMatch(%q, %q) but not with shorter prefix %q", prefix, path, p)
				}
			}
		}
	})
}

func BenchmarkPrefixMatch(b *testing.B) {
	for _, bc := range []struct{ name, prefix, path string }{
		{"ascii_hit", "/admin/", "/admin/users/list.gmi"},
		{"ascii_miss", "/admin/", "/docs/page.gmi"},
		{"ascii_lookalike", "/admin/", "/ADMIN.;x=1/users"},
		{"deep_prefix", "/apps/wiki/edit/", "/apps/wiki/edit/page"},
		{"non_ascii", "/admin/", "/%EF%BD%81dmin/users"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				PrefixMatch(bc.prefix, bc.path)
			}
		})
	}
}
