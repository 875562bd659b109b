package tofu

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FingerprintKind says what a fingerprint is a hash of.
type FingerprintKind uint8

// Fingerprint kinds.
const (
	// KindCert is SHA-256 over the certificate's DER encoding, written
	// "sha256:<hex>": the Gemini convention.
	KindCert FingerprintKind = iota + 1
	// KindSPKI is SHA-256 over the certificate's SubjectPublicKeyInfo,
	// written "spki-sha256:<hex>". It survives a renewal with the same key.
	KindSPKI
)

// Fingerprint is a typed SHA-256 fingerprint. It is a comparable value: use
// == to compare.
type Fingerprint struct {
	Kind FingerprintKind
	Sum  [sha256.Size]byte
}

const (
	certPrefix = "sha256:"
	spkiPrefix = "spki-sha256:"
)

// ErrBadFingerprint is returned by ParseFingerprint for malformed input.
var ErrBadFingerprint = errors.New("bad fingerprint")

// String returns "sha256:<64 lower-case hex>" or "spki-sha256:<64 hex>".
func (f Fingerprint) String() string {
	var p string
	switch f.Kind {
	case KindCert:
		p = certPrefix
	case KindSPKI:
		p = spkiPrefix
	default:
		return ""
	}
	return p + hex.EncodeToString(f.Sum[:])
}

// IsZero reports whether f is the zero Fingerprint.
func (f Fingerprint) IsZero() bool { return f.Kind == 0 }

// MarshalText implements encoding.TextMarshaler.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	v, err := ParseFingerprint(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// ParseFingerprint parses "sha256:<hex>" or "spki-sha256:<hex>". The prefix
// and the hex digits may be upper or lower case (ASCII only), and the 32 hex
// byte pairs may be separated by single colons ("sha256:AB:CD:…"), as some
// tools print them; surrounding ASCII white space is ignored. Anything else,
// including a misplaced colon or a wrong number of digits, is an error
// wrapping ErrBadFingerprint.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	rest := strings.Trim(s, " \t\r\n")
	switch {
	case hasPrefixFold(rest, spkiPrefix):
		f.Kind, rest = KindSPKI, rest[len(spkiPrefix):]
	case hasPrefixFold(rest, certPrefix):
		f.Kind, rest = KindCert, rest[len(certPrefix):]
	default:
		return Fingerprint{}, fmt.Errorf("%w: %s: want sha256:<hex> or spki-sha256:<hex>", ErrBadFingerprint, quoteShort(s))
	}
	switch len(rest) {
	case 2 * sha256.Size:
	case 3*sha256.Size - 1: // colon-separated pairs
		var b [2 * sha256.Size]byte
		for i := range sha256.Size {
			if i > 0 && rest[3*i-1] != ':' {
				return Fingerprint{}, fmt.Errorf("%w: %s: misplaced separator", ErrBadFingerprint, quoteShort(s))
			}
			b[2*i], b[2*i+1] = rest[3*i], rest[3*i+1]
		}
		rest = string(b[:])
	default:
		return Fingerprint{}, fmt.Errorf("%w: %s: want %d hex digits", ErrBadFingerprint, quoteShort(s), 2*sha256.Size)
	}
	if _, err := hex.Decode(f.Sum[:], []byte(rest)); err != nil {
		return Fingerprint{}, fmt.Errorf("%w: %s: %w", ErrBadFingerprint, quoteShort(s), err)
	}
	return f, nil
}

// hasPrefixFold reports whether s begins with prefix, folding ASCII case
// only, so that no Unicode look-alike (such as the Kelvin sign for "k")
// passes for a prefix letter. prefix must be lower-case ASCII.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// quoteShort quotes s for an error message, cut to a bounded length so that
// hostile input cannot blow up logs.
func quoteShort(s string) string {
	const maxLen = 100
	if len(s) > maxLen {
		return strconv.Quote(s[:maxLen]) + "…"
	}
	return strconv.Quote(s)
}

// CertFingerprint returns the KindCert fingerprint of a DER certificate.
func CertFingerprint(der []byte) Fingerprint {
	return Fingerprint{Kind: KindCert, Sum: sha256.Sum256(der)}
}

// SPKIFingerprint returns the KindSPKI fingerprint of cert.
func SPKIFingerprint(cert *x509.Certificate) Fingerprint {
	return Fingerprint{Kind: KindSPKI, Sum: sha256.Sum256(cert.RawSubjectPublicKeyInfo)}
}

// Identity is what a certificate proves: both of its fingerprints. It is
// computed once per connection and compared without allocation.
type Identity struct {
	Cert [sha256.Size]byte
	SPKI [sha256.Size]byte
}

// IdentityOf returns the identity of cert.
func IdentityOf(cert *x509.Certificate) Identity {
	return Identity{Cert: sha256.Sum256(cert.Raw), SPKI: sha256.Sum256(cert.RawSubjectPublicKeyInfo)}
}

// IsZero reports whether id is the zero Identity (no certificate).
func (id Identity) IsZero() bool { return id == Identity{} }

// CertFingerprint returns the KindCert fingerprint of id.
func (id Identity) CertFingerprint() Fingerprint { return Fingerprint{Kind: KindCert, Sum: id.Cert} }

// SPKIFingerprint returns the KindSPKI fingerprint of id.
func (id Identity) SPKIFingerprint() Fingerprint { return Fingerprint{Kind: KindSPKI, Sum: id.SPKI} }

// Matches reports whether f names id: a KindCert fingerprint matches the
// certificate, a KindSPKI fingerprint matches its public key.
func (id Identity) Matches(f Fingerprint) bool {
	switch f.Kind {
	case KindCert:
		return f.Sum == id.Cert
	case KindSPKI:
		return f.Sum == id.SPKI
	}
	return false
}
