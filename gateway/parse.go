package gateway

import (
	"strings"
	"unicode/utf8"
)

// ParseRequest parses a Gemini or Titan request line, without its CRLF, into
// the URL fields of r (Scheme, Host, Port, Path, RawQuery, Titan). It leaves
// r unchanged when it fails.
//
// The line must be at most MaxRequestLine bytes of valid UTF-8 with no byte
// order mark, space or control byte, and hold an absolute URL
// "scheme://host[:port][/path][?query]". The scheme is matched
// case-insensitively; "gemini" and "titan" are served and any other scheme
// followed by "//" is refused with ReasonProxyRefused. Userinfo, fragments,
// an empty host, a percent-encoded host, an IPv6 zone, and a port that is
// not 1 to 65535 in decimal are refused with ReasonBadRequest; an empty port
// ("host:/") counts as none. The host is normalised with NormalizeHost (IPv6
// literals come in brackets and are stored without them), the path with
// CanonicalPath ("/" when empty). The query is kept as received but must be
// well-formed percent-encoding. For titan, the path ends at its first ';'
// and the rest are parameters (see ParseTitanParams); for gemini a ';' is an
// ordinary path character.
//
// Errors are *Error whose Msg is short and safe to send to the client: it
// never quotes the request.
func ParseRequest(line []byte, r *Request) error {
	if len(line) > MaxRequestLine {
		return newError(ReasonBadRequest, "request too long")
	}
	if len(line) == 0 {
		return newError(ReasonBadRequest, "empty request")
	}
	if len(line) >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF {
		return newError(ReasonBadRequest, "byte order mark not allowed")
	}
	nonASCII := false
	for _, c := range line {
		switch {
		case c <= ' ' || c == 0x7f:
			return newError(ReasonBadRequest, "space or control character in request")
		case c == '#':
			return newError(ReasonBadRequest, "fragment not allowed")
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	if nonASCII && !utf8.Valid(line) {
		return newError(ReasonBadRequest, "invalid UTF-8 in request")
	}

	scheme, rest, ok := cutScheme(line)
	if !ok {
		return newError(ReasonBadRequest, "not an absolute URL")
	}
	if len(rest) < 2 || rest[0] != '/' || rest[1] != '/' {
		return newError(ReasonBadRequest, "URL has no host")
	}
	var sc Scheme
	switch {
	case equalFoldBytes(scheme, "gemini"):
		sc = SchemeGemini
	case equalFoldBytes(scheme, "titan"):
		sc = SchemeTitan
	default:
		return newError(ReasonProxyRefused, "scheme not served")
	}

	// The one allocation of the common case: every string field of r is a
	// substring of s or a constant.
	s := string(rest[2:])
	end := strings.IndexAny(s, "/?")
	if end < 0 {
		end = len(s)
	}
	host, port, err := parseAuthority(s[:end])
	if err != nil {
		return err
	}
	pathPart, query, _ := strings.Cut(s[end:], "?")
	if !validPctEncoding(query) {
		return newError(ReasonBadRequest, "malformed percent-encoding in query")
	}
	var tp TitanParams
	if sc == SchemeTitan {
		semi := strings.IndexByte(pathPart, ';')
		if semi < 0 {
			return newError(ReasonBadRequest, "titan size missing")
		}
		if tp, err = ParseTitanParams(pathPart[semi+1:]); err != nil {
			return err
		}
		pathPart = pathPart[:semi]
	}
	path := "/"
	if pathPart != "" {
		if path, err = CanonicalPath(pathPart); err != nil {
			return err
		}
	}

	r.Scheme = sc
	r.Host = host
	r.Port = port
	r.Path = path
	r.RawQuery = query
	r.Titan = tp
	return nil
}

// cutScheme splits "scheme:rest". The scheme must be ALPHA *( ALPHA / DIGIT /
// "+" / "-" / "." ) (RFC 3986 §3.1); a line that starts otherwise is
// relative ("/x", "//host/") and one without ':' before any '/' or '?' is
// scheme-less ("example.org/").
func cutScheme(line []byte) (scheme, rest []byte, ok bool) {
	for i, c := range line {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return line[:i], line[i+1:], true
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// parseAuthority parses "host[:port]" or "[ipv6][:port]" and normalises the
// host.
func parseAuthority(auth string) (host string, port int, err error) {
	if strings.IndexByte(auth, '@') >= 0 {
		return "", 0, newError(ReasonBadRequest, "userinfo not allowed")
	}
	var portPart string
	if strings.HasPrefix(auth, "[") {
		j := strings.IndexByte(auth, ']')
		if j < 0 {
			return "", 0, newError(ReasonBadRequest, msgBadHost)
		}
		host, portPart = auth[1:j], auth[j+1:]
		if portPart != "" && portPart[0] != ':' {
			return "", 0, newError(ReasonBadRequest, msgBadHost)
		}
		if strings.IndexByte(host, ':') < 0 || strings.IndexByte(host, '%') >= 0 {
			// Not IPv6 ("[example.org]", IPvFuture) or has a zone id.
			return "", 0, newError(ReasonBadRequest, msgBadHost)
		}
		portPart = strings.TrimPrefix(portPart, ":")
	} else {
		host, portPart, _ = strings.Cut(auth, ":")
		if host == "" {
			return "", 0, newError(ReasonBadRequest, "missing host")
		}
		if strings.ContainsAny(host, "%[]") {
			return "", 0, newError(ReasonBadRequest, msgBadHost)
		}
	}
	if host, err = NormalizeHost(host); err != nil {
		return "", 0, err
	}
	if portPart != "" {
		if port = parsePort(portPart); port == 0 {
			return "", 0, newError(ReasonBadRequest, "invalid port")
		}
	}
	return host, port, nil
}

// parsePort parses a decimal port in 1..65535 and returns 0 when p is not one.
func parsePort(p string) int {
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0
		}
	}
	return n
}

// equalFoldBytes reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case.
func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if asciiLower(b[i]) != s[i] {
			return false
		}
	}
	return true
}
