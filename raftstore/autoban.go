package raftstore

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// AutoBanPolicy turns persistent rate-limit abuse into bans. A client whose
// connection is refused by the hard rate limit after Threshold violations
// (soft and hard verdicts since its bucket was last full) is banned for
// Duration; each further ban of the same prefix within StrikeMemory of the
// last one's end lasts Escalate times longer, up to Max.
type AutoBanPolicy struct {
	Threshold  uint32        // violations that earn a ban; 0 disables auto-bans
	Duration   time.Duration // the first ban
	Escalate   float64       // factor per further strike, >= 1
	Max        time.Duration // the longest auto-ban
	IPv4Prefix int           // what a ban covers: the rate limiter's client keys
	IPv6Prefix int
}

// DefaultAutoBanPolicy returns the policy a node runs with when none is
// configured: with the rate limiter's defaults a client that bursts gets 10
// answers, 20 slow-downs and 20 refusals at accept, and is then banned for
// ten minutes, then twenty, forty… up to a day.
func DefaultAutoBanPolicy() AutoBanPolicy {
	return AutoBanPolicy{
		Threshold:  40,
		Duration:   10 * time.Minute,
		Escalate:   2,
		Max:        24 * time.Hour,
		IPv4Prefix: 32,
		IPv6Prefix: 64,
	}
}

// ErrInvalidPolicy is wrapped by AutoBanPolicy.Validate's errors.
var ErrInvalidPolicy = errors.New("invalid auto-ban policy")

// Validate reports every problem of p, each naming its field.
func (p AutoBanPolicy) Validate() error {
	var errs []error
	if p.Threshold > 0 {
		if p.Duration <= 0 {
			errs = append(errs, fmt.Errorf("duration: must be positive, got %s", p.Duration))
		}
		if !(p.Escalate >= 1) || math.IsInf(p.Escalate, 0) {
			errs = append(errs, fmt.Errorf("escalate: must be a finite number >= 1, got %v", p.Escalate))
		}
		if p.Max < p.Duration {
			errs = append(errs, fmt.Errorf("max: must be at least duration (%s), got %s", p.Duration, p.Max))
		}
	}
	if p.IPv4Prefix < 1 || p.IPv4Prefix > 32 {
		errs = append(errs, fmt.Errorf("ipv4_prefix: must be in 1..32, got %d", p.IPv4Prefix))
	}
	if p.IPv6Prefix < 1 || p.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("ipv6_prefix: must be in 1..128, got %d", p.IPv6Prefix))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidPolicy, errors.Join(errs...))
}

// Enabled reports whether the policy bans anyone.
func (p AutoBanPolicy) Enabled() bool { return p.Threshold > 0 }

// DurationFor returns the length of a ban for a prefix that already has
// strikes bans in a row: Duration × Escalate^strikes, at most Max.
func (p AutoBanPolicy) DurationFor(strikes int) time.Duration {
	d := float64(p.Duration) * math.Pow(p.Escalate, float64(max(strikes, 0)))
	if d >= float64(p.Max) || math.IsNaN(d) {
		return p.Max
	}
	return time.Duration(d)
}

// PrefixOf returns the prefix a ban of addr covers.
func (p AutoBanPolicy) PrefixOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap() // Addr.Prefix below drops any zone
	bits := p.IPv6Prefix
	if addr.Is4() {
		bits = p.IPv4Prefix
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return pfx
}
