package gateway

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrInvalidPrefix is returned (wrapped) by ValidPrefix for a route prefix
// that is not a canonical, folded, slash-terminated path.
var ErrInvalidPrefix = errors.New("invalid route prefix")

// PrefixMatch reports whether the canonical path falls inside the route
// prefix. prefix is a canonical path ending in "/" (see ValidPrefix); "/"
// matches every path. Matching is by whole segments: "/admin/" matches
// "/admin", "/admin/" and "/admin/x", not "/administrator" or "/admin-x".
//
// A path segment matches a prefix segment when both are equal after folding
// away spellings that a backend may treat as the same name, so a rule on a
// prefix cannot be bypassed by writing the path differently:
//   - ASCII letters are compared case-insensitively ("/ADMIN", "/AdMiN");
//   - anything from the first ';' on is ignored ("/admin;x=1/", path
//     parameters to servlet containers), and so is anything from a decoded
//     '?' or '#' ("/admin%3F", for a backend that decodes and re-parses);
//   - trailing dots and spaces are ignored ("/admin./x", "/admin%20/",
//     trimmed by Windows file systems);
//   - when either segment holds non-ASCII bytes, both are decoded, put in
//     NFKC form and case-folded rune by rune (upper-, then lower-case, which
//     also folds "ı", "ſ" and the Kelvin sign), so fullwidth "ａdmin"
//     ("%EF%BD%81dmin") and "admın" match "admin".
//
// Folding only ever widens a match. PrefixMatch does not allocate for ASCII
// paths.
func PrefixMatch(prefix, path string) bool {
	if prefix == "" || prefix[0] != '/' || path == "" || path[0] != '/' {
		return false
	}
	p, q := prefix[1:], path[1:]
	for p != "" {
		var ps, qs string
		if i := strings.IndexByte(p, '/'); i >= 0 {
			ps, p = p[:i], p[i+1:]
		} else {
			ps, p = p, ""
		}
		if ps == "" {
			continue
		}
		ended := false
		if i := strings.IndexByte(q, '/'); i >= 0 {
			qs, q = q[:i], q[i+1:]
		} else {
			qs, q, ended = q, "", true
		}
		if !segmentMatch(ps, qs) || ended && p != "" {
			return false
		}
	}
	return true
}

// ValidPrefix checks a configured route prefix: it must start and end with
// "/", be canonical (CanonicalPath returns it unchanged) and be in folded
// form, so that it matches what it says: lower-case, no ';', '?' or '#', no trailing dot
// or space on a segment, and non-ASCII segments already in NFKC, lower-case
// form. Errors wrap ErrInvalidPrefix.
func ValidPrefix(p string) error {
	if p == "" || p[0] != '/' || p[len(p)-1] != '/' {
		return fmt.Errorf("%w: must start and end with /", ErrInvalidPrefix)
	}
	if p == "/" {
		return nil
	}
	c, err := CanonicalPath(p)
	if e := (*Error)(nil); errors.As(err, &e) {
		return fmt.Errorf("%w: %s", ErrInvalidPrefix, e.Msg)
	}
	if c != p {
		return fmt.Errorf("%w: not canonical, use %q", ErrInvalidPrefix, c)
	}
	for seg := range strings.SplitSeq(p[1:len(p)-1], "/") {
		if seg == "" {
			continue
		}
		if foldSegment(seg) != string(decodePct(seg)) {
			return fmt.Errorf("%w: segment %q must be lower-case, without ';', '?', '#' or trailing dots and spaces", ErrInvalidPrefix, seg)
		}
	}
	return nil
}

// segmentMatch compares a prefix segment with a path segment.
func segmentMatch(ps, qs string) bool {
	if ps == qs {
		return true
	}
	if hasNonASCII(ps) || hasNonASCII(qs) {
		return foldSegment(ps) == foldSegment(qs)
	}
	ps, qs = asciiStem(ps), asciiStem(qs)
	i, j := 0, 0
	for i < len(ps) && j < len(qs) {
		a, ni := decodedByteAt(ps, i)
		b, nj := decodedByteAt(qs, j)
		if asciiLower(a) != asciiLower(b) {
			return false
		}
		i, j = ni, nj
	}
	return i == len(ps) && j == len(qs)
}

// asciiStem returns the part of an ASCII segment that names it: up to the
// first (decoded) ';', '?' or '#', without trailing (decoded) dots and
// spaces.
func asciiStem(s string) string {
	for i := 0; i < len(s); {
		c, n := decodedByteAt(s, i)
		if c == ';' || c == '?' || c == '#' {
			s = s[:i]
			break
		}
		i = n
	}
	for len(s) > 0 {
		if s[len(s)-1] == '.' {
			s = s[:len(s)-1]
			continue
		}
		if len(s) < 3 {
			return s
		}
		if c, ok := escapeAt(s, len(s)-3); !ok || c != '.' && c != ' ' {
			return s
		}
		s = s[:len(s)-3]
	}
	return s
}

// foldSegment returns the comparison form of any segment: decoded, NFKC,
// each rune upper- then lower-cased, cut at the first ';', '?' or '#', trailing dots and
// spaces removed.
func foldSegment(s string) string {
	v := norm.NFKC.String(string(decodePct(s)))
	v = strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, v)
	if i := strings.IndexAny(v, ";?#"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimRight(v, ". ")
}

// hasNonASCII reports whether s holds a non-ASCII byte, raw or
// percent-encoded.
func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			return true
		case c == '%':
			if d, ok := escapeAt(s, i); ok && d >= utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

// decodedByteAt returns the byte at s[i], decoding a valid %XX escape, and
// the index after it. Malformed escapes are taken literally.
func decodedByteAt(s string, i int) (byte, int) {
	if c, ok := escapeAt(s, i); ok {
		return c, i + 3
	}
	return s[i], i + 1
}

// decodePct decodes the valid %XX escapes of s.
func decodePct(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c, n := decodedByteAt(s, i)
		b = append(b, c)
		i = n
	}
	return b
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
