package tofu

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadPinLine is wrapped by ParsePinLine's errors.
var ErrBadPinLine = errors.New("bad pin line")

// pinLineFields is the number of fields of a pin line.
const pinLineFields = 6

// FormatPinLine formats p as one line of a pin file, without the newline:
//
//	<kind> <scope> <sha256:hex cert> <spki-sha256:hex> <created RFC3339> <notafter RFC3339>
//
// The scope is percent-escaped (space, control bytes, '%', '#' and every
// byte outside printable ASCII), so a scope can neither split the line nor
// start another one. Times are written in UTC with nanoseconds (RFC 3339
// allows fractional seconds) so that they read back exactly. The error wraps
// ErrInvalidPin when p fails Validate.
func FormatPinLine(p Pin) (string, error) {
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("format pin: %w", err)
	}
	var b strings.Builder
	b.Grow(len(p.Key.Scope) + 256)
	b.WriteString(p.Key.Kind.String())
	b.WriteByte(' ')
	escapeScope(&b, p.Key.Scope)
	b.WriteByte(' ')
	b.WriteString(p.Identity.CertFingerprint().String())
	b.WriteByte(' ')
	b.WriteString(p.Identity.SPKIFingerprint().String())
	b.WriteByte(' ')
	b.WriteString(p.Created.UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(p.NotAfter.UTC().Format(time.RFC3339Nano))
	return b.String(), nil
}

// ParsePinLine parses one line written by FormatPinLine. Fields are
// separated by spaces or tabs; surrounding white space and a trailing "\r"
// are ignored. Fingerprints are read by ParseFingerprint, times as RFC 3339
// with any offset and returned in UTC. Blank and comment lines are not pin
// lines: the file reader skips them before calling ParsePinLine. The
// returned pin passes Validate. Errors wrap ErrBadPinLine.
func ParsePinLine(line string) (Pin, error) {
	line = strings.TrimSuffix(line, "\r")
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) != pinLineFields {
		return Pin{}, fmt.Errorf("%w: want %d fields, got %d", ErrBadPinLine, pinLineFields, len(fields))
	}
	for _, f := range fields {
		if i := strings.IndexFunc(f, isControl); i >= 0 {
			return Pin{}, fmt.Errorf("%w: control byte %q", ErrBadPinLine, f[i])
		}
	}
	var p Pin
	var err error
	if p.Key.Kind, err = ParsePinKind(fields[0]); err != nil {
		return Pin{}, fmt.Errorf("%w: %w", ErrBadPinLine, err)
	}
	if p.Key.Scope, err = unescapeScope(fields[1]); err != nil {
		return Pin{}, fmt.Errorf("%w: scope: %w", ErrBadPinLine, err)
	}
	cert, err := parseFingerprintKind(fields[2], KindCert)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: certificate: %w", ErrBadPinLine, err)
	}
	spki, err := parseFingerprintKind(fields[3], KindSPKI)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: public key: %w", ErrBadPinLine, err)
	}
	p.Identity = Identity{Cert: cert.Sum, SPKI: spki.Sum}
	if p.Created, err = time.Parse(time.RFC3339Nano, fields[4]); err != nil {
		return Pin{}, fmt.Errorf("%w: created: %w", ErrBadPinLine, err)
	}
	if p.NotAfter, err = time.Parse(time.RFC3339Nano, fields[5]); err != nil {
		return Pin{}, fmt.Errorf("%w: not after: %w", ErrBadPinLine, err)
	}
	p.Created, p.NotAfter = p.Created.UTC(), p.NotAfter.UTC()
	if err := p.Validate(); err != nil {
		return Pin{}, fmt.Errorf("%w: %w", ErrBadPinLine, err)
	}
	return p, nil
}

// parseFingerprintKind parses s and requires it to be of kind k.
func parseFingerprintKind(s string, k FingerprintKind) (Fingerprint, error) {
	f, err := ParseFingerprint(s)
	if err != nil {
		return Fingerprint{}, err
	}
	if f.Kind != k {
		return Fingerprint{}, fmt.Errorf("%w: %s: wrong kind", ErrBadFingerprint, quoteShort(s))
	}
	return f, nil
}

// isControl reports whether r is an ASCII control character.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// needsEscape reports whether c must be percent-escaped in a scope field.
func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '%' || c == '#'
}

// escapeScope writes s to b with the bytes that needsEscape selects written
// as %XX (upper-case hex).
func escapeScope(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := range len(s) {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
}

// unescapeScope reverses escapeScope. Every '%' must begin a %XX escape
// (hex in either case); the result must be a valid scope length.
func unescapeScope(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at byte %d", i)
		}
		hi, ok1 := fromHex(s[i+1])
		lo, ok2 := fromHex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %s at byte %d", quoteShort(s[i:i+3]), i)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return string(out), nil
}

// fromHex returns the value of the hex digit c.
func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
