package tofu

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PinKind says what a pin protects.
type PinKind uint8

// Pin kinds. The zero PinKind is not a valid kind.
const (
	// PinClient is a claimed path prefix: the first client certificate to
	// use it owns it. Its scope is "host/path/", e.g. "example.org/app/".
	PinClient PinKind = iota + 1
	// PinUpstream is an upstream server's certificate, seen first on the
	// first connection. Its scope is "host:port", e.g. "backend:1965".
	PinUpstream
)

// String returns "client" or "upstream" (the spelling used in pin files),
// or "pinkind(N)" for an invalid kind.
func (k PinKind) String() string {
	switch k {
	case PinClient:
		return "client"
	case PinUpstream:
		return "upstream"
	}
	return "pinkind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is one of the defined kinds.
func (k PinKind) Valid() bool { return k == PinClient || k == PinUpstream }

// ParsePinKind parses "client" or "upstream" (ASCII case-insensitive).
func ParsePinKind(s string) (PinKind, error) {
	switch strings.ToLower(s) {
	case "client":
		return PinClient, nil
	case "upstream":
		return PinUpstream, nil
	}
	return 0, fmt.Errorf("%w: unknown kind %s", ErrInvalidPin, quoteShort(s))
}

// MaxScopeLen bounds the length in bytes of a PinKey scope. A Gemini URL is
// at most 1024 bytes, so any host and path prefix fits.
const MaxScopeLen = 1024

// PinKey names what a pin protects: a kind and a scope. It is comparable and
// is used as a map key.
type PinKey struct {
	Kind PinKind
	// Scope is "example.org/app/" for a client claim (canonical host and
	// path prefix) and "host:port" for an upstream.
	Scope string
}

// String returns the kind and scope separated by a space, such as
// "client example.org/app/" or "upstream backend:1965".
func (k PinKey) String() string { return k.Kind.String() + " " + k.Scope }

// Validate reports whether k has a valid kind and a non-empty scope of at
// most MaxScopeLen bytes; the error wraps ErrInvalidPin.
func (k PinKey) Validate() error {
	switch {
	case !k.Kind.Valid():
		return fmt.Errorf("%w: kind %v", ErrInvalidPin, k.Kind)
	case k.Scope == "":
		return fmt.Errorf("%w: empty scope", ErrInvalidPin)
	case len(k.Scope) > MaxScopeLen:
		return fmt.Errorf("%w: scope longer than %d bytes", ErrInvalidPin, MaxScopeLen)
	}
	return nil
}

// compareKeys orders keys by kind, then scope.
func compareKeys(a, b PinKey) int {
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return strings.Compare(a.Scope, b.Scope)
}

// Pin binds a key to the identity of the certificate that first used it.
type Pin struct {
	Key      PinKey
	Identity Identity
	// NotAfter is the pinned certificate's expiry. It is informational: a
	// pin does not lapse when the certificate does (see Compare).
	NotAfter time.Time
	// Created is when the pin was made.
	Created time.Time
}

// ErrInvalidPin is wrapped by the errors for a pin or key that cannot be
// stored: an unknown kind, an empty or too long scope, a zero identity or a
// time outside the years 0000-9999.
var ErrInvalidPin = errors.New("invalid pin")

// Validate reports whether p can be stored; the error wraps ErrInvalidPin.
func (p Pin) Validate() error {
	if err := p.Key.Validate(); err != nil {
		return err
	}
	if p.Identity.IsZero() {
		return fmt.Errorf("%w: zero identity", ErrInvalidPin)
	}
	for _, t := range [...]time.Time{p.Created, p.NotAfter} {
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			return fmt.Errorf("%w: year %d out of range", ErrInvalidPin, y)
		}
	}
	return nil
}

// Equal reports whether p and q are the same pin: same key and identity,
// and times that denote the same instants (time.Time.Equal, so location and
// monotonic clock readings do not matter).
func (p Pin) Equal(q Pin) bool {
	return p.Key == q.Key && p.Identity == q.Identity &&
		p.Created.Equal(q.Created) && p.NotAfter.Equal(q.NotAfter)
}
