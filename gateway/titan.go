package gateway

import (
	"mime"
	"net/url"
	"strings"
)

// MaxTitanSize is the largest size a Titan request may declare, 2^53 (the
// largest integer a JSON number holds exactly). The upload limit of a route
// is enforced elsewhere and is normally far lower.
const MaxTitanSize = 1 << 53

// DefaultTitanMIME is the media type of a Titan upload that names none.
const DefaultTitanMIME = "text/gemini"

// Titan parameter keys, as bits of a seen-set.
const (
	titanSize = 1 << iota
	titanMIME
	titanToken
)

// ParseTitanParams parses the parameters of a Titan URL: s is the text after
// the first ';' of the path component, as in "size=10;mime=text/plain;token=x"
// for titan://host/path;size=10;mime=text/plain;token=x (a leading ';' is
// tolerated, as are empty parameters like ";;").
//
// Keys are case-insensitive and may come in any order, each at most once;
// unknown keys are ignored. size is required: decimal digits, 0 to
// MaxTitanSize. mime is optional (DefaultTitanMIME when absent) and
// percent-decoded; it must be a type/subtype media type, optionally with
// parameters, without control characters. token is optional and
// percent-decoded. Errors are *Error with ReasonBadRequest; their messages
// never contain the token.
func ParseTitanParams(s string) (TitanParams, error) {
	var tp TitanParams
	var seen int
	for s != "" {
		var param string
		if i := strings.IndexByte(s, ';'); i >= 0 {
			param, s = s[:i], s[i+1:]
		} else {
			param, s = s, ""
		}
		if param == "" {
			continue
		}
		key, val, hasVal := strings.Cut(param, "=")
		var bit int
		switch {
		case strings.EqualFold(key, "size"):
			bit = titanSize
		case strings.EqualFold(key, "mime"):
			bit = titanMIME
		case strings.EqualFold(key, "token"):
			bit = titanToken
		default:
			continue
		}
		if seen&bit != 0 {
			return TitanParams{}, newError(ReasonBadRequest, "duplicate titan parameter")
		}
		seen |= bit
		if !hasVal {
			return TitanParams{}, newError(ReasonBadRequest, "titan parameter without value")
		}
		var ok bool
		switch bit {
		case titanSize:
			if tp.Size, ok = parseTitanSize(val); !ok {
				return TitanParams{}, newError(ReasonBadRequest, "invalid titan size")
			}
		case titanMIME:
			if tp.MIME, ok = unescapeParam(val); !ok || !validTitanMIME(tp.MIME) {
				return TitanParams{}, newError(ReasonBadRequest, "invalid titan mime type")
			}
		case titanToken:
			if tp.Token, ok = unescapeParam(val); !ok || hasCtlByte(tp.Token) {
				return TitanParams{}, newError(ReasonBadRequest, "invalid titan token")
			}
		}
	}
	if seen&titanSize == 0 {
		return TitanParams{}, newError(ReasonBadRequest, "titan size missing")
	}
	if seen&titanMIME == 0 {
		tp.MIME = DefaultTitanMIME
	}
	return tp, nil
}

// parseTitanSize parses a non-empty decimal number no larger than
// MaxTitanSize. Leading zeros are allowed; signs and spaces are not.
func parseTitanSize(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > MaxTitanSize {
			return 0, false
		}
	}
	return n, true
}

// validTitanMIME reports whether m is "type/subtype", both RFC 9110 tokens,
// optionally followed by well-formed parameters, with no control bytes.
func validTitanMIME(m string) bool {
	if hasCtlByte(m) {
		return false
	}
	mt, params, hasParams := strings.Cut(m, ";")
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || !isMediaToken(typ) || !isMediaToken(sub) {
		return false
	}
	if hasParams && strings.TrimSpace(params) != "" {
		if _, _, err := mime.ParseMediaType(m); err != nil {
			return false
		}
	}
	return true
}

// isMediaToken reports whether s is a non-empty RFC 9110 token.
func isMediaToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func hasCtlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if isCtlByte(s[i]) {
			return true
		}
	}
	return false
}

// unescapeParam percent-decodes s (url.PathUnescape: "+" stays "+"). It
// reports false for a malformed escape; the error is dropped, since it
// would quote the value, and a token must never reach a log.
func unescapeParam(s string) (string, bool) {
	v, err := url.PathUnescape(s)
	return v, err == nil
}
