package gateway

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits on DNS names (RFC 1035 §2.3.4), counted without a trailing dot.
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

const msgBadHost = "invalid host"

// hostProfile converts Unicode host names to their ASCII (punycode) form.
// It is immutable once built and safe for concurrent use.
//
// It is the UTS #46 lookup profile (MapForLookup: case and width folding,
// STD3 ASCII rules so only LDH survives, label validation including a check
// that "xn--" labels decode to valid U-labels, ContextJ joiner rules) plus the
// Bidi rule, non-transitional (ß stays ß, as in browsers since 2017). It
// matches idna.Lookup except that CheckHyphens is off: real names such as
// "r3---sn-abc.example" have "--" in positions 3-4, and browsers accept them.
// Leading and trailing hyphens are still refused, by NormalizeHost's own
// LDH check, as are over-long labels and names (VerifyDNSLength is not set
// because NormalizeHost strips the trailing dot itself and checks lengths
// on the result).
var hostProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
)

// NormalizeHost returns the canonical form of a host name, used for the
// request host, the TLS server name and configured host names alike so they
// compare with ==.
//
// ASCII letters are lower-cased and one trailing dot is removed. Unicode
// names, and names with an "xn--" label, are converted and validated with
// IDNA (UTS #46 lookup mapping, see hostProfile), so "bücher.example" and
// "XN--BCHER-KVA.example" both become "xn--bcher-kva.example". The result
// must be letters, digits and hyphens in dot-separated labels of 1 to 63
// bytes, not starting or ending with a hyphen, at most 253 bytes in all.
//
// When the last label is numeric (digits, or "0x" and hex digits) the name
// must be a dotted-quad IPv4 address as netip parses it ("127.0.0.1"); other
// numeric forms ("127.1", "0x7f.1", "0177.0.0.1", "2130706433") are refused
// rather than reinterpreted. A name containing ':' must be an IPv6 address
// without brackets and without a zone; it is returned in netip's canonical
// form ("::1"). Errors are *Error with ReasonBadRequest.
//
// NormalizeHost returns h itself, without allocating, when it is already
// normalised.
func NormalizeHost(h string) (string, error) {
	if h == "" {
		return "", newError(ReasonBadRequest, "missing host")
	}
	if isNormalLDH(h) {
		return h, nil
	}
	if strings.IndexByte(h, ':') >= 0 {
		return normalizeIPv6(h)
	}
	if len(h) > MaxRequestLine {
		return "", newError(ReasonBadRequest, msgBadHost)
	}
	s := strings.TrimSuffix(h, ".")
	if needsIDNA(s) {
		if !utf8.ValidString(s) {
			// idna would map invalid bytes to U+FFFD and encode that.
			return "", newError(ReasonBadRequest, msgBadHost)
		}
		a, err := hostProfile.ToASCII(s)
		if err != nil {
			return "", &Error{Reason: ReasonBadRequest, Msg: msgBadHost, Err: err}
		}
		s = a
	} else {
		s = lowerHostASCII(s)
	}
	if isNumericLabel(lastLabel(s)) {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return "", newError(ReasonBadRequest, msgBadHost)
		}
		// netip accepts only dotted decimal without leading zeros, which
		// is already the canonical spelling of a.
		return s, nil
	}
	if !validLDHName(s) {
		return "", newError(ReasonBadRequest, msgBadHost)
	}
	return s, nil
}

// normalizeIPv6 validates an IPv6 literal (no brackets, no zone).
func normalizeIPv6(h string) (string, error) {
	a, err := netip.ParseAddr(h)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", newError(ReasonBadRequest, msgBadHost)
	}
	return a.String(), nil
}

// isNormalLDH reports whether h is already a normalised DNS name: lower-case
// LDH labels, no "xn--" label (those need IDNA validation), no trailing dot,
// within the length limits, not numeric.
func isNormalLDH(h string) bool {
	if len(h) > maxNameLen {
		return false
	}
	start := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) {
			c := h[i]
			if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' {
				continue
			}
			if c != '.' {
				return false
			}
		}
		label := h[start:i]
		if !validLabel(label) || strings.HasPrefix(label, "xn--") {
			return false
		}
		if i == len(h) && isNumericLabel(label) {
			return false
		}
		start = i + 1
	}
	return true
}

// validLDHName reports whether s is a valid lower-case LDH name.
func validLDHName(s string) bool {
	if len(s) > maxNameLen {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !validLabel(label) {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validLabel checks a label's length and hyphen placement.
func validLabel(l string) bool {
	return l != "" && len(l) <= maxLabelLen && l[0] != '-' && l[len(l)-1] != '-'
}

// needsIDNA reports whether s holds non-ASCII bytes or an "xn--" label.
func needsIDNA(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
		if (i == 0 || s[i-1] == '.') && len(s)-i >= 4 && strings.EqualFold(s[i:i+4], "xn--") {
			return true
		}
	}
	return false
}

func lastLabel(s string) string {
	return s[strings.LastIndexByte(s, '.')+1:]
}

// isNumericLabel reports whether l looks like the number part of an IPv4
// address: all digits, or "0x" followed by hex digits (WHATWG URL rules).
// No top-level domain is numeric, so such a name can only be an address.
func isNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isPctHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// lowerHostASCII lower-cases ASCII letters, allocating only when needed.
func lowerHostASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// appendHostPort appends host, in brackets when it is an IPv6 literal, and
// ":port" when port is not 0.
func appendHostPort(b []byte, host string, port int) []byte {
	if strings.IndexByte(host, ':') >= 0 {
		b = append(b, '[')
		b = append(b, host...)
		b = append(b, ']')
	} else {
		b = append(b, host...)
	}
	if port != 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(port), 10)
	}
	return b
}
