package gateway

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxMeta is the longest meta a Gemini response header may carry, in bytes.
const MaxMeta = 1024

// maxResponseHeader is the longest response header line including its CRLF:
// two status digits, a space, MaxMeta bytes of meta, CR and LF.
const maxResponseHeader = 2 + 1 + MaxMeta + 2

// ErrBadHeader is wrapped by the errors for a Gemini response header that
// breaks the protocol: not two digits 10..69, a missing or doubled space, a
// meta longer than MaxMeta bytes, invalid UTF-8, control characters, or a
// line not ended by CRLF.
var ErrBadHeader = errors.New("bad response header")

// ParseResponseHeader parses a Gemini response header line given WITHOUT its
// terminating CRLF: exactly two ASCII digits forming a status in 10..69,
// then either nothing or a single space followed by the meta. The meta is at
// most MaxMeta bytes of valid UTF-8 with no control characters (C0, DEL or
// C1) and does not begin with a space. "20 " yields an empty meta, like
// "20". The error wraps ErrBadHeader.
func ParseResponseHeader(line []byte) (status int, meta string, err error) {
	if len(line) < 2 {
		return 0, "", fmt.Errorf("%w: too short", ErrBadHeader)
	}
	d0, d1 := line[0], line[1]
	if d0 < '1' || d0 > '6' || d1 < '0' || d1 > '9' {
		return 0, "", fmt.Errorf("%w: status is not two digits 10..69", ErrBadHeader)
	}
	status = int(d0-'0')*10 + int(d1-'0')
	if len(line) == 2 {
		return status, "", nil
	}
	if line[2] != ' ' {
		return 0, "", fmt.Errorf("%w: no space after status", ErrBadHeader)
	}
	m := line[3:]
	if len(m) > MaxMeta {
		return 0, "", fmt.Errorf("%w: meta longer than %d bytes", ErrBadHeader, MaxMeta)
	}
	if len(m) > 0 && m[0] == ' ' {
		return 0, "", fmt.Errorf("%w: more than one space after status", ErrBadHeader)
	}
	meta = string(m)
	if err := checkMeta(meta); err != nil {
		return 0, "", err
	}
	return status, meta, nil
}

// checkMeta reports whether m is valid UTF-8 without control characters
// (C0, DEL or C1): the rule for every meta, received or sent.
func checkMeta(m string) error {
	for i := 0; i < len(m); {
		c := m[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("%w: control byte 0x%02x in meta", ErrBadHeader, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(m[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: meta is not valid UTF-8", ErrBadHeader)
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("%w: control character U+%04X in meta", ErrBadHeader, r)
		}
		i += size
	}
	return nil
}

// appendResponseHeader appends "<status> <meta>\r\n" ("<status>\r\n" when
// meta is empty) to b. It does not validate.
func appendResponseHeader(b []byte, status int, meta string) []byte {
	b = append(b, byte('0'+status/10%10), byte('0'+status%10))
	if meta != "" {
		b = append(b, ' ')
		b = append(b, meta...)
	}
	return append(b, '\r', '\n')
}
