package gateway

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Client-safe messages for path errors. They never quote the path.
const (
	msgPathNotAbsolute  = "path must start with /"
	msgPathBadEscape    = "malformed percent-encoding in path"
	msgPathBadChar      = "forbidden character in path"
	msgPathBadUTF8      = "invalid UTF-8 in path"
	msgPathAboveRoot    = "path escapes the root"
	msgPathDoubleEscape = "double percent-encoding in path"
	msgPathAmbiguous    = "ambiguous path segment"
)

// CanonicalPath returns the canonical form of raw, the path component of a
// request URL as received (it must start with "/"). Rules are matched on,
// and upstreams receive, this form only.
//
// The path is split on '/' and each segment is percent-decoded exactly once.
// A malformed escape, a raw backslash, space or control byte, a decoded '/',
// '\\', NUL or control byte, or a decoded segment that is not valid UTF-8
// (overlong forms, surrogates, stray continuation bytes) is an error. Empty
// segments collapse; "." and ".." (also when encoded, as in "%2e%2E") are
// removed as in RFC 3986 §5.2.4, and ".." above the root is an error rather
// than being clamped. Each segment is then re-encoded: unreserved
// characters, sub-delims, ':' and '@' stay literal, every other byte
// (including all non-ASCII bytes) becomes %XX with upper-case hex. A trailing
// slash is kept.
//
// Beyond those rules, CanonicalPath refuses spellings that a backend could
// resolve to a different path than the gateway did:
//   - a decoded segment that still holds a percent escape ("%252e" decodes
//     to "%2e"): double encoding;
//   - a segment whose part before the first ';' is empty or made only of
//     dots and spaces but is not exactly "." or ".." (";", "..;", "...",
//     ". "): servlet containers strip ";params" and Windows trims trailing
//     dots and spaces, turning these into dot-segments or "//";
//   - a non-ASCII segment whose NFKC form breaks any rule above (fullwidth
//     solidus "／", "‥" two dot leader, fullwidth percent "％").
//
// The result is idempotent (CanonicalPath of a canonical path returns it
// unchanged). When raw is already canonical CanonicalPath returns raw itself,
// without allocating for an ASCII path (a canonical path with non-ASCII
// segments costs one small allocation per such segment, for the NFKC check).
// Errors are *Error with ReasonBadRequest.
func CanonicalPath(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", newError(ReasonBadRequest, msgPathNotAbsolute)
	}
	if isCanonicalASCII(raw) {
		return raw, nil
	}
	return canonicalize(raw)
}

// canonicalize is the full CanonicalPath algorithm, for a raw path that
// starts with '/'.
func canonicalize(raw string) (string, error) {
	// Stack buffers: a raw path that turns out to be canonical after all
	// (with "%25" or non-ASCII escapes) is returned without copying, and a
	// changed one is copied once; paths beyond the buffers grow on the heap.
	var outBuf [MaxRequestLine]byte
	var segBuf [MaxRequestLine]byte
	out := append(outBuf[:0], '/')
	seg := segBuf[:0]
	lastRegular := false // the last segment was a name (no trailing slash)
	rest := raw[1:]
	for {
		var part string
		last := false
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			part, rest, last = rest, "", true
		}
		var err error
		seg, err = decodeSegment(seg[:0], part)
		if err != nil {
			return "", err
		}
		switch {
		case len(seg) == 0:
			// "//" collapses; a trailing "/" stays (out ends in '/').
			lastRegular = false
		case len(seg) == 1 && seg[0] == '.':
			lastRegular = false
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if len(out) == 1 {
				return "", newError(ReasonBadRequest, msgPathAboveRoot)
			}
			out = out[:bytes.LastIndexByte(out[:len(out)-1], '/')+1]
			lastRegular = false
		default:
			if msg := checkSegment(seg); msg != "" {
				return "", newError(ReasonBadRequest, msg)
			}
			out = appendEncodedSegment(out, seg)
			out = append(out, '/')
			lastRegular = true
		}
		if last {
			break
		}
	}
	if lastRegular {
		out = out[:len(out)-1]
	}
	if string(out) == raw {
		return raw, nil
	}
	return string(out), nil
}

// isCanonicalASCII is the fast path of CanonicalPath: it reports whether
// raw (starting with '/') is canonical and needs none of the checks that
// decoding non-ASCII or '%' bytes calls for. False means "take the slow
// path", not "not canonical".
func isCanonicalASCII(raw string) bool {
	segStart := 1
	stemOnlyDots := true // the segment so far is only '.' and "%20"
	inStem := true       // no ';' seen yet in the segment
	for i := 1; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == '/' {
			seg := raw[segStart:i]
			switch {
			case seg == "":
				if i != len(raw) {
					return false // "//"
				}
			case seg == "." || seg == "..", stemOnlyDots:
				return false
			}
			segStart, stemOnlyDots, inStem = i+1, true, true
			continue
		}
		c := raw[i]
		switch {
		case c == '%':
			d, ok := escapeAt(raw, i)
			if !ok || d >= utf8.RuneSelf || !isUpperHex(raw[i+1]) || !isUpperHex(raw[i+2]) {
				return false // malformed, non-ASCII or lower-case: slow path
			}
			if d == '%' || isPathLiteral(d) || d == '/' || d == '\\' || isCtlByte(d) {
				return false
			}
			if inStem && d != ' ' {
				stemOnlyDots = false
			}
			i += 2
		case isPathLiteral(c):
			if c == ';' {
				inStem = false
			} else if inStem && c != '.' {
				stemOnlyDots = false
			}
		default:
			return false
		}
	}
	return true
}

// decodeSegment appends the percent-decoded bytes of the raw segment part to
// dst. It refuses malformed escapes, raw backslashes, spaces and controls,
// decoded '/', '\\' and controls, and invalid UTF-8.
func decodeSegment(dst []byte, part string) ([]byte, error) {
	nonASCII := false
	for i := 0; i < len(part); i++ {
		c := part[i]
		switch {
		case c == '%':
			d, ok := escapeAt(part, i)
			if !ok {
				return dst, newError(ReasonBadRequest, msgPathBadEscape)
			}
			c = d
			i += 2
			if c == '/' || c == '\\' || isCtlByte(c) {
				return dst, newError(ReasonBadRequest, msgPathBadChar)
			}
		case c == '\\' || c == ' ' || isCtlByte(c):
			return dst, newError(ReasonBadRequest, msgPathBadChar)
		}
		if c >= utf8.RuneSelf {
			nonASCII = true
		}
		dst = append(dst, c)
	}
	if nonASCII && !utf8.Valid(dst) {
		return dst, newError(ReasonBadRequest, msgPathBadUTF8)
	}
	return dst, nil
}

// checkSegment applies the look-alike rules to a decoded, non-dot segment
// and returns a client-safe message when it must be refused.
func checkSegment(seg []byte) string {
	if msg := checkDecoded(seg); msg != "" {
		return msg
	}
	if bytesASCII(seg) {
		return ""
	}
	// string(seg) copies (one allocation per non-ASCII segment), so seg, a
	// stack buffer, does not escape. NFKC.String returns its input when it
	// is already normal, and that was checked above.
	s := string(seg)
	v := norm.NFKC.String(s)
	if v == s {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '/' || c == '\\' || isCtlByte(c) {
			return msgPathBadChar
		}
	}
	return checkDecoded(v)
}

// checkDecoded refuses double encoding and dot-like segments in a decoded
// segment (or its NFKC form).
func checkDecoded[T string | []byte](seg T) string {
	stemEnd := len(seg)
	for i := 0; i < len(seg); i++ {
		if _, ok := escapeAt(seg, i); ok {
			return msgPathDoubleEscape
		}
		if seg[i] == ';' && stemEnd == len(seg) {
			stemEnd = i
		}
	}
	for i := 0; i < stemEnd; i++ {
		if c := seg[i]; c != '.' && c != ' ' {
			return ""
		}
	}
	return msgPathAmbiguous
}

// appendEncodedSegment appends the canonical encoding of the decoded segment
// seg to dst.
func appendEncodedSegment(dst, seg []byte) []byte {
	const hexDigits = "0123456789ABCDEF"
	for _, c := range seg {
		if isPathLiteral(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// isPathLiteral reports whether c stays literal in a canonical path:
// unreserved characters, sub-delims, ':' and '@' (RFC 3986 pchar).
func isPathLiteral(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func isCtlByte(c byte) bool { return c < 0x20 || c == 0x7f }

func bytesASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
