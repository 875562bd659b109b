package raftstore

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// MinBanBitsIPv4 and MinBanBitsIPv6 are the widest prefixes an operator
// may ban without Force: a /16 of IPv4 (65,536 addresses) and a /32 of
// IPv6 (a whole provider's allocation). Anything wider spans many
// networks and is far more likely a typo (0.0.0.0/0, ::/0, 10.0.0.0/8)
// than a target; it would shut out every client in it, the operator
// included when they come in from there.
const (
	MinBanBitsIPv4 = 16
	MinBanBitsIPv6 = 32
)

// ErrInvalidCommand is wrapped by BanCommand.Validate's errors, and so by
// Bans.Add's for a command it refuses.
var ErrInvalidCommand = errors.New("invalid ban command")

// ErrBroadPrefix is wrapped by CheckBreadth's error, and so by
// BanCommand.Validate's and a deny rule's refusal, for a prefix wider than
// MinBanBitsIPv4 or MinBanBitsIPv6 without Force.
var ErrBroadPrefix = errors.New("too broad")

// BanCommand is an operator's request to ban a prefix. Validate is the one
// rule every path applies (the admin API, the command line, and with the
// cluster issue the leader before it proposes the event).
type BanCommand struct {
	Prefix netip.Prefix
	// Duration is how long the ban lasts from when it is applied; it must
	// be positive unless Permanent.
	Duration time.Duration
	// Permanent asks for a ban that holds until lifted by hand; Duration
	// must then be zero. A zero or negative Duration never means this.
	Permanent bool
	// Reason is a token of [a-z0-9_.-], 1 to MaxReasonLen bytes.
	Reason string
	// Force allows a prefix wider than MinBanBitsIPv4 or MinBanBitsIPv6.
	Force bool
}

// Validate reports everything wrong with c, each problem naming its field.
// The errors wrap ErrInvalidCommand, and ErrBroadPrefix for a prefix too
// broad to ban without Force.
func (c BanCommand) Validate() error {
	var errs []error
	p := normalizePrefix(c.Prefix)
	switch {
	case !p.IsValid():
		errs = append(errs, fmt.Errorf("prefix: invalid %q", c.Prefix))
	case !c.Force:
		if err := CheckBreadth(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	switch {
	case c.Permanent && c.Duration != 0:
		errs = append(errs, fmt.Errorf("duration: a permanent ban has none, got %s", c.Duration))
	case !c.Permanent && c.Duration <= 0:
		errs = append(errs, fmt.Errorf("duration: must be positive, got %s (a ban until lifted is asked for as permanent)", c.Duration))
	}
	if err := checkToken("reason", c.Reason); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidCommand, errors.Join(errs...))
}

// CheckBreadth returns an error wrapping ErrBroadPrefix when p is wider
// than MinBanBitsIPv4 (IPv4) or MinBanBitsIPv6 (IPv6): the rule for what
// shuts clients out, bans and deny rules alike, unless the operator forces
// it. An IPv4-mapped prefix counts as the IPv4 prefix it maps. An invalid
// p is not its concern (nil).
func CheckBreadth(p netip.Prefix) error {
	p = normalizePrefix(p)
	if !p.IsValid() || p.Bits() >= minBanBits(p) {
		return nil
	}
	return fmt.Errorf("%w: %s is wider than /%d and would shut out every client in it, perhaps you too", ErrBroadPrefix, p, minBanBits(p))
}

// minBanBits returns the widest prefix length p's family may be banned at
// without Force.
func minBanBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return MinBanBitsIPv4
	}
	return MinBanBitsIPv6
}

// checkToken reports what keeps s from being a token of [a-z0-9_.-], 1 to
// MaxReasonLen bytes, naming field. A string too long is not quoted back.
func checkToken(field, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s: missing", field)
	case len(s) > MaxReasonLen:
		return fmt.Errorf("%s: %d bytes, at most %d", field, len(s), MaxReasonLen)
	case !validToken(s):
		return fmt.Errorf("%s: %q is not a token of [a-z0-9_.-]", field, s)
	}
	return nil
}
