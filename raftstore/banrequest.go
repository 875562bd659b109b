package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// BanRequest is a ban as people and programs ask for it in JSON: the body
// of the admin API's POST /bans and of a request on the event plane's
// cmd.ban subject. Command turns it into the BanCommand the store
// validates and applies.
type BanRequest struct {
	Prefix string `json:"prefix"` // CIDR or bare address (ParsePrefix)
	// Duration is a positive Go duration ("90m", "24h"), or "permanent"
	// (or absent) for a ban that holds until lifted by hand. "0s" and
	// negative durations are refused rather than read as permanent.
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"` // token of [a-z0-9_.-]; "" → "operator"
	// Force allows a prefix wider than /16 (IPv4) or /32 (IPv6).
	Force bool `json:"force,omitempty"`
}

// Permanent is how BanRequest.Duration spells a ban that holds until
// lifted by hand.
const Permanent = "permanent"

// MaxBanRequestBytes bounds an encoded BanRequest: a prefix, a duration
// and a reason of at most MaxReasonLen bytes fit many times over.
const MaxBanRequestBytes = 4 << 10

// ErrBadBanRequest is wrapped by DecodeBanRequest's errors.
var ErrBadBanRequest = errors.New("bad ban request")

// DecodeBanRequest decodes data as one JSON BanRequest, strictly: at most
// MaxBanRequestBytes, no unknown field, nothing after the object. It does
// not check the values (see Command).
func DecodeBanRequest(data []byte) (BanRequest, error) {
	var r BanRequest
	if len(data) > MaxBanRequestBytes {
		return r, fmt.Errorf("%w: larger than %d bytes", ErrBadBanRequest, MaxBanRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return BanRequest{}, fmt.Errorf("%w: %w", ErrBadBanRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BanRequest{}, fmt.Errorf("%w: data after the object", ErrBadBanRequest)
	}
	return r, nil
}

// Command turns r into the command the ban store validates and applies. It
// reports only what the store cannot see (a prefix or duration that does
// not parse); BanCommand.Validate is the authority on the rest (see
// ValidCommand).
func (r BanRequest) Command() (BanCommand, error) {
	p, err := ParsePrefix(r.Prefix)
	if err != nil {
		return BanCommand{}, fmt.Errorf("prefix: %w", err)
	}
	c := BanCommand{Prefix: p, Reason: r.Reason, Force: r.Force}
	if c.Reason == "" {
		c.Reason = "operator"
	}
	switch r.Duration {
	case "", Permanent:
		c.Permanent = true
	default:
		if c.Duration, err = time.ParseDuration(r.Duration); err != nil {
			return BanCommand{}, fmt.Errorf("duration: %q is neither a duration such as 90m or 24h nor %q", r.Duration, Permanent)
		}
	}
	return c, nil
}

// ValidCommand is Command followed by BanCommand.Validate: the command,
// or everything wrong with r. A prefix too broad without Force gets
// forceHint appended to its error (how the caller's interface spells
// force), when forceHint is not empty.
func (r BanRequest) ValidCommand(forceHint string) (BanCommand, error) {
	c, err := r.Command()
	if err != nil {
		return BanCommand{}, err
	}
	if err := c.Validate(); err != nil {
		if forceHint != "" && errors.Is(err, ErrBroadPrefix) {
			err = fmt.Errorf("%w (%s)", err, forceHint)
		}
		return BanCommand{}, err
	}
	return c, nil
}

// ParsePrefix parses a prefix as operators write one: a CIDR
// ("203.0.113.0/24") or a bare IP address, which becomes a /32 or /128.
// IPv4-mapped IPv6 addresses and prefixes are unmapped
// ("::ffff:10.0.0.0/104" is 10.0.0.0/8), host bits are cleared, and zones
// are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	if !strings.Contains(t, "/") {
		a, err := netip.ParseAddr(t)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %s", s, notCIDR)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(t)
	if err != nil {
		addr, bits, _ := strings.Cut(t, "/")
		if a, err := netip.ParseAddr(addr); err == nil && a.Zone() == "" {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: prefix length %q is not 0..%d", s, bits, a.BitLen())
		}
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %s", s, notCIDR)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// notCIDR says what a prefix should look like.
const notCIDR = "want an IP address or a CIDR such as 203.0.113.0/24 or 2001:db8::/32"
