package gateway

import "strings"

// Percent-escapes. Every part of the gateway that reads an escape in a
// path or query (the canonicaliser, the prefix matcher, the document root,
// the query check) recognises it with escapeAt, so they cannot disagree on
// what "%2e" or "%2" is. Decoding a whole path segment, with the
// canonicaliser's refusals, is decodeSegment (canonical.go). Titan
// parameter values, which are not paths, are decoded by url.PathUnescape
// (unescapeParam in titan.go): the same escape rule, from the standard
// library.

// escapeAt reports whether s[i] starts a percent escape, '%' and two hex
// digits of either case, and returns the byte it encodes.
func escapeAt[T string | []byte](s T, i int) (byte, bool) {
	if s[i] != '%' || i+2 >= len(s) {
		return 0, false
	}
	hi, lo := hexValue[s[i+1]], hexValue[s[i+2]]
	if hi|lo > 0xf {
		return 0, false
	}
	return hi<<4 | lo, true
}

// hexValue maps a byte to its value as a hex digit, 0xff for a byte that
// is not one: a constant table, so escapeAt stays small enough to inline.
const hexValue = "" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xff\xff\xff\xff\xff\xff" +
	"\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\x0a\x0b\x0c\x0d\x0e\x0f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"

// validPctEncoding reports whether every '%' in s starts an escape.
func validPctEncoding(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0 && i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if _, ok := escapeAt(s, i); !ok {
			return false
		}
		i += 2
	}
	return true
}

// isPctHex reports whether c is a hex digit (either case).
func isPctHex(c byte) bool { return hexValue[c] <= 0xf }

// isUpperHex reports whether c is a hex digit in canonical (upper) case.
func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
