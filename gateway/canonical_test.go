package gateway

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // "" means an error is expected
	}{
		{"root", "/", "/"},
		{"simple", "/docs/page.gmi", "/docs/page.gmi"},
		{"trailing slash kept", "/a/", "/a/"},
		{"trailing dot segment", "/a/.", "/a/"},
		{"trailing dotdot segment", "/a/..", "/"},
		{"inner dotdot", "/a/b/../c", "/a/c"},
		{"dotdot to root then name", "/a/../b", "/b"},
		{"leading dot", "/./a", "/a"},
		{"encoded dot", "/%2e/a", "/a"},
		{"encoded dotdot mixed case", "/a/%2e%2E/b", "/b"},
		{"double slash collapses", "/a//b", "/a/b"},
		{"many slashes", "////", "/"},
		{"trailing double slash", "/a//", "/a/"},
		{"decode unreserved", "/%61%7E%2D%5F", "/a~-_"},
		{"sub-delims literal", "/!$&'()*+,;=:@", "/!$&'()*+,;=:@"},
		{"encoded sub-delims decoded", "/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40", "/!$&'()*+,;=:@"},
		{"space encoded", "/a%20b", "/a%20b"},
		{"lower hex upper-cased", "/%c3%a9", "/%C3%A9"},
		{"raw UTF-8 encoded", "/é", "/%C3%A9"},
		{"other ASCII encoded", "/\"<>^`{|}[]", "/%22%3C%3E%5E%60%7B%7C%7D%5B%5D"},
		{"question mark encoded", "/%3F", "/%3F"},
		{"percent sign kept encoded", "/100%25", "/100%25"},
		{"case preserved", "/AdMiN", "/AdMiN"},
		{"dots inside names kept", "/a.b/c..d/.e", "/a.b/c..d/.e"},
		{"four-byte rune", "/%F0%9F%98%80", "/%F0%9F%98%80"},

		{"empty", "", ""},
		{"relative", "a/b", ""},
		{"dotdot above root", "/..", ""},
		{"dotdot above root later", "/a/../..", ""},
		{"encoded dotdot above root", "/%2e%2e", ""},
		{"lone percent", "/%", ""},
		{"short escape", "/%4", ""},
		{"bad hex", "/%zz", ""},
		{"escape at end", "/a%2", ""},
		{"encoded slash", "/a%2Fb", ""},
		{"encoded backslash", "/a%5cb", ""},
		{"raw backslash", "/a\\b", ""},
		{"encoded NUL", "/a%00", ""},
		{"encoded CR", "/a%0D", ""},
		{"encoded LF", "/a%0a", ""},
		{"encoded TAB", "/a%09", ""},
		{"encoded DEL", "/a%7F", ""},
		{"raw TAB", "/a\tb", ""},
		{"raw space", "/a b", ""},
		{"raw DEL", "/a\x7f", ""},
		{"overlong dot", "/%C0%AE", ""},
		{"overlong dot 3 bytes", "/%E0%80%AE", ""},
		{"overlong slash", "/%C0%AF", ""},
		{"lone continuation", "/%80", ""},
		{"truncated sequence", "/%C3", ""},
		{"surrogate", "/%ED%A0%80", ""},
		{"beyond U+10FFFF", "/%F4%90%80%80", ""},
		{"raw invalid UTF-8", "/\xff", ""},
		{"double encoded dot", "/%252e", ""},
		{"double encoded letter", "/%2561", ""},
		{"dotdot with params", "/a/..;/b", ""},
		{"empty stem with params", "/;x/b", ""},
		{"three dots", "/...", ""},
		{"dot space", "/.%20", ""},
		{"space only", "/%20", ""},
		{"fullwidth solidus", "/a%EF%BC%8Fb", ""},
		{"fullwidth reverse solidus", "/a%EF%BC%BCb", ""},
		{"two dot leader", "/%E2%80%A5", ""},
		{"fullwidth percent escape", "/%EF%BC%85%EF%BC%94%EF%BC%91", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalPath(tt.raw)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("CanonicalPath(%q) = %q, want error", tt.raw, got)
				}
				assertReason(t, err, ReasonBadRequest)
				return
			}
			if err != nil {
				t.Fatalf("CanonicalPath(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Fatalf("CanonicalPath(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			again, err := CanonicalPath(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: CanonicalPath(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func TestCanonicalPathReturnsInputWhenCanonical(t *testing.T) {
	raw := strings.Clone("/docs/page.gmi")
	got, err := CanonicalPath(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got != raw || unsafe.StringData(got) != unsafe.StringData(raw) {
		t.Fatalf("CanonicalPath(%q) = %q, a copy; want the input itself", raw, got)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = CanonicalPath(raw) }); n != 0 {
		t.Fatalf("CanonicalPath of a canonical path allocates %v times", n)
	}
}

func TestCanonicalPathErrorMessagesDoNotEchoInput(t *testing.T) {
	for _, raw := range []string{"/secret-token%00", "/secret-token/../..", "/secret-token%zz", "/secret-token%252e"} {
		_, err := CanonicalPath(raw)
		if err == nil {
			t.Fatalf("CanonicalPath(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), "secret-token") {
			t.Fatalf("error %q echoes the path", err)
		}
	}
}

// corpusVector is one line of testdata/traversal.txt.
type corpusVector struct {
	line   int
	expect string // "59", "53" or "=<canonical>"
	raw    string
}

func loadTraversalCorpus(tb testing.TB) []corpusVector {
	tb.Helper()
	f, err := os.Open("testdata/traversal.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var vs []corpusVector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		expect, raw, ok := strings.Cut(line, " ")
		if !ok || raw == "" {
			tb.Fatalf("traversal.txt:%d: malformed line %q", n, line)
		}
		vs = append(vs, corpusVector{line: n, expect: expect, raw: raw})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return vs
}

// evalVector runs a corpus vector through CanonicalPath (a path) or
// ParseRequest (a request line) and returns the canonical path.
func evalVector(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") {
		return CanonicalPath(raw)
	}
	var r Request
	if err := ParseRequest([]byte(raw), &r); err != nil {
		return "", err
	}
	return r.Path, nil
}

func TestTraversalCorpus(t *testing.T) {
	vs := loadTraversalCorpus(t)
	if len(vs) < 50 {
		t.Fatalf("corpus has %d vectors, want at least 50", len(vs))
	}
	for _, v := range vs {
		got, err := evalVector(v.raw)
		switch {
		case strings.HasPrefix(v.expect, "="):
			if err != nil {
				t.Errorf("traversal.txt:%d: %q: unexpected error %v", v.line, v.raw, err)
			} else if want := v.expect[1:]; got != want {
				t.Errorf("traversal.txt:%d: %q: got %q, want %q", v.line, v.raw, got, want)
			}
		case v.expect == "59" || v.expect == "53":
			want := ReasonBadRequest
			if v.expect == "53" {
				want = ReasonProxyRefused
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != want {
				t.Errorf("traversal.txt:%d: %q: got (%q, %v), want %s", v.line, v.raw, got, err, want)
			}
		default:
			t.Fatalf("traversal.txt:%d: unknown expectation %q", v.line, v.expect)
		}
	}
}

// TestAdminNotBypassable checks, for every corpus vector the gateway
// accepts, that either PrefixMatch("/admin/", canon) holds or no plausible
// backend interpretation of canon (see backendNamesAdmin) lands in /admin.
// A canonicaliser that let an encoded or look-alike /admin through, or let a
// spelling that a backend resolves to /admin reach it unmatched, fails here.
func TestAdminNotBypassable(t *testing.T) {
	t.Run("corpus", func(t *testing.T) {
		matched := 0
		for _, v := range loadTraversalCorpus(t) {
			canon, err := evalVector(v.raw)
			if err != nil {
				continue // refused: nothing reaches a backend
			}
			inside := PrefixMatch("/admin/", canon)
			if inside {
				matched++
			}
			if !inside && backendNamesAdmin(canon) {
				t.Errorf("traversal.txt:%d: %q -> %q may reach /admin but is outside /admin/", v.line, v.raw, canon)
			}
		}
		if matched < 20 {
			t.Errorf("only %d corpus vectors land in /admin/; the corpus lost its look-alikes", matched)
		}
	})
	t.Run("encoded letter", func(t *testing.T) {
		canon, err := CanonicalPath("/%61dmin/secret")
		if err != nil || canon != "/admin/secret" {
			t.Fatalf("CanonicalPath(/%%61dmin/secret) = %q, %v; want /admin/secret", canon, err)
		}
		if !PrefixMatch("/admin/", canon) {
			t.Fatalf("%q is not inside /admin/", canon)
		}
	})
	// The oracle must flag outputs a broken canonicaliser could produce;
	// otherwise the corpus check above proves nothing.
	t.Run("oracle has teeth", func(t *testing.T) {
		for _, bad := range []string{
			"/%61dmin/secret",          // letter left encoded
			"/public/%252e%252e/admin", // double encoding passed through
			"/public/..;/admin",        // ";" dot segment passed through
			"/;/admin",                 // empty stem passed through
			"/%EF%BC%8Fadmin",          // fullwidth solidus passed through
			"/x/%E2%80%A5/admin",       // two dot leader passed through
			"/..%20/admin",             // dot-space segment passed through
			"/admin%3F",                // a re-parsing backend cuts the path at '?'
		} {
			if !backendNamesAdmin(bad) {
				t.Errorf("oracle misses %q", bad)
			}
		}
		for _, bad := range []string{"/public/%252e%252e/admin", "/public/..;/admin", "/%EF%BC%8Fadmin", "/x/%E2%80%A5/admin"} {
			if PrefixMatch("/admin/", bad) {
				t.Errorf("PrefixMatch matches %q: the corpus check cannot fail for it", bad)
			}
			if _, err := CanonicalPath(bad); err == nil {
				t.Errorf("CanonicalPath accepts %q", bad)
			}
		}
		for _, fine := range []string{"/public/admin", "/administrator", "/", "/x/admin/", "/adminx/"} {
			if backendNamesAdmin(fine) {
				t.Errorf("oracle flags %q", fine)
			}
		}
	})
}

// backendNamesAdmin reports whether some backend could resolve the
// canonical path c into the /admin zone: it tries a plain RFC 3986 reading
// and maximally lenient ones (decode repeatedly, NFKC, '\' as '/', case
// folding, ";params" stripped, trailing dots and spaces trimmed, ".." clamped
// at the root instead of refused, the decoded path re-parsed as a URL).
func backendNamesAdmin(c string) bool {
	plain := string(decodePct(c))
	lenient := plain
	for range 4 {
		lenient = string(decodePct(norm.NFKC.String(lenient)))
	}
	reparsed, _, _ := strings.Cut(lenient, "?") // decoded, then parsed as a URL again
	reparsed, _, _ = strings.Cut(reparsed, "#")
	for _, v := range []string{plain, lenient, reparsed} {
		for _, aggressive := range []bool{false, true} {
			if first := firstResolvedSegment(v, aggressive); first == "admin" {
				return true
			}
		}
	}
	return false
}

// firstResolvedSegment resolves dot segments in the decoded path p, clamping
// at the root, and returns its first segment.
func firstResolvedSegment(p string, aggressive bool) string {
	if aggressive {
		p = strings.ReplaceAll(p, "\\", "/")
	}
	var stack []string
	for seg := range strings.SplitSeq(p, "/") {
		if aggressive {
			seg, _, _ = strings.Cut(seg, ";")
			switch {
			case seg != "" && strings.Trim(seg, ". ") == "" && strings.Contains(seg, ".."):
				seg = ".." // "...", ".. ": read as a step up, the worst case
			case seg != "" && strings.Trim(seg, ". ") == "":
				seg = "."
			default:
				seg = strings.TrimRight(seg, ". ")
			}
			seg = strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, seg)
		}
		switch seg {
		case "", ".":
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		default:
			stack = append(stack, seg)
		}
	}
	if len(stack) == 0 {
		return ""
	}
	return strings.ToLower(stack[0])
}

func assertReason(t *testing.T, err error, want Reason) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Reason != want {
		t.Fatalf("reason = %s, want %s (err %v)", e.Reason, want, err)
	}
	if e.Msg == "" {
		t.Fatalf("error %v has no client message", err)
	}
}

// checkCanonicalForm reports what is wrong with a CanonicalPath result, or "".
func checkCanonicalForm(c string) string {
	if !strings.HasPrefix(c, "/") {
		return "does not start with /"
	}
	if strings.Contains(c, "//") {
		return "contains //"
	}
	for seg := range strings.SplitSeq(c[1:], "/") {
		if seg == "." || seg == ".." {
			return "has a dot segment"
		}
		if d := string(decodePct(seg)); d == "." || d == ".." || strings.ContainsAny(d, "/\\") {
			return "has an encoded dot segment, slash or backslash"
		}
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if ch <= ' ' || ch >= 0x7f {
			return "has a byte outside printable ASCII"
		}
		if ch == '%' && (i+2 >= len(c) || !strings.ContainsRune("0123456789ABCDEF", rune(c[i+1])) || !strings.ContainsRune("0123456789ABCDEF", rune(c[i+2]))) {
			return "has a malformed or lower-case escape"
		}
	}
	return ""
}

func FuzzCanonicalPath(f *testing.F) {
	for _, v := range loadTraversalCorpus(f) {
		if strings.HasPrefix(v.raw, "/") {
			f.Add(v.raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := CanonicalPath(raw)
		if isCanonicalASCII(raw) && strings.HasPrefix(raw, "/") {
			// The fast path must agree with the full algorithm.
			if slow, err := canonicalize(raw); err != nil || slow != raw {
				t.Fatalf("fast path accepts %q, full algorithm gives %q, %v", raw, slow, err)
			}
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonBadRequest || e.Msg == "" {
				t.Fatalf("CanonicalPath(%q) error %v is not a bad request", raw, err)
			}
			return
		}
		if msg := checkCanonicalForm(c); msg != "" {
			t.Fatalf("CanonicalPath(%q) = %q: %s", raw, c, msg)
		}
		again, err := CanonicalPath(c)
		if err != nil || again != c {
			t.Fatalf("not idempotent: CanonicalPath(%q) = %q, then %q, %v", raw, c, again, err)
		}
		if !PrefixMatch("/", c) {
			t.Fatalf("PrefixMatch(/, %q) = false", c)
		}
		if !PrefixMatch("/admin/", c) && backendNamesAdmin(c) {
			t.Fatalf("CanonicalPath(%q) = %q may reach /admin but is outside /admin/", raw, c)
		}
	})
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"canonical", "/docs/2024/page.gmi"},
		{"needs_work", "/docs/./2024/%70age%2Egmi/../page.gmi"},
		{"non_ascii", "/b%c3%bccher/%E6%97%A5%E6%9C%AC.gmi"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CanonicalPath(bc.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCanonicalFastPathAgrees(t *testing.T) {
	inputs := []string{"/", "/a", "/a/", "/a;b", "/.well-known/x", "/a%20b", "/%20", "/.%20", "/;x", "/a/.;x", "/%2F", "/%7E",
		"/%3F", "/%3f", "/100%25", "/a%0A", "/..a", "/a..", "/...", "/a//b", "/%C3%A9", "/!$&'()*+,;=:@-._~"}
	for _, v := range loadTraversalCorpus(t) {
		if strings.HasPrefix(v.raw, "/") {
			inputs = append(inputs, v.raw)
			if c, err := CanonicalPath(v.raw); err == nil {
				inputs = append(inputs, c)
			}
		}
	}
	for _, raw := range inputs {
		want, wantErr := canonicalize(raw)
		got, err := CanonicalPath(raw)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("CanonicalPath(%q) = %q, %v; full algorithm gives %q, %v", raw, got, err, want, wantErr)
		}
	}
}
