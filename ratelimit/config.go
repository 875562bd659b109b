package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidConfig is matched (with errors.Is) by every error that
// Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid rate limit config")

// maxMaxKeys bounds MaxKeys so that slab positions fit an int32.
const maxMaxKeys = math.MaxInt32

// Config holds the limiter's parameters. Start from DefaultConfig.
type Config struct {
	// Capacity is the bucket size in tokens: the burst a fresh client may
	// send. It must be at least 1.
	Capacity float64
	// RefillPerSec is the sustained rate in tokens per second.
	RefillPerSec float64
	// HardFactor sets the debt zones: balances in
	// [-(HardFactor-1)*Capacity, 0) are Soft, lower ones Hard, and the debt
	// is floored at -HardFactor*Capacity. It must be at least 1 (1 means no
	// Soft zone).
	HardFactor float64
	// IPv4Prefix is the prefix length (1-32) that groups IPv4 clients.
	IPv4Prefix int
	// IPv6Prefix is the prefix length (1-128) that groups IPv6 clients.
	IPv6Prefix int
	// MaxKeys is the hard cap on tracked keys.
	MaxKeys int
	// Now returns the current time; nil (the default) means time.Now, read
	// through time.Since so that only the monotonic clock is consulted.
	// Only differences between its results matter, so times carrying a
	// monotonic reading make the limiter immune to wall-clock jumps.
	Now func() time.Time
}

// DefaultConfig returns the default configuration: 10 requests of burst,
// 1 request per second sustained, hard limit at 3 times the capacity, IPv4
// clients by /32, IPv6 clients by /64, at most 1<<20 keys, and the system
// clock (Now nil).
func DefaultConfig() Config {
	return Config{
		Capacity:     10,
		RefillPerSec: 1,
		HardFactor:   3,
		IPv4Prefix:   32,
		IPv6Prefix:   64,
		MaxKeys:      1 << 20,
	}
}

// Validate reports every invalid field. Each message starts with the
// field's name ("capacity: must be >= 1, got 0") and every error matches
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if !finiteAtLeast(c.Capacity, 1) {
		errs = append(errs, fieldErr("capacity", "must be >= 1, got %v", c.Capacity))
	}
	if !finiteAtLeast(c.RefillPerSec, 0) || c.RefillPerSec == 0 {
		errs = append(errs, fieldErr("refill_per_sec", "must be > 0, got %v", c.RefillPerSec))
	}
	if !finiteAtLeast(c.HardFactor, 1) {
		errs = append(errs, fieldErr("hard_factor", "must be >= 1, got %v", c.HardFactor))
	} else if math.IsInf(c.Capacity*c.HardFactor, 0) {
		errs = append(errs, fieldErr("hard_factor", "capacity*hard_factor overflows"))
	}
	if c.IPv4Prefix < 1 || c.IPv4Prefix > 32 {
		errs = append(errs, fieldErr("ipv4_prefix", "must be in 1..32, got %d", c.IPv4Prefix))
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		errs = append(errs, fieldErr("ipv6_prefix", "must be in 1..128, got %d", c.IPv6Prefix))
	}
	if c.MaxKeys < 1 || c.MaxKeys > maxMaxKeys {
		errs = append(errs, fieldErr("max_keys", "must be in 1..%d, got %d", maxMaxKeys, c.MaxKeys))
	}
	return errors.Join(errs...)
}

func finiteAtLeast(v, lo float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= lo
}

// fieldError is one invalid field; it matches ErrInvalidConfig.
type fieldError struct {
	field, msg string
}

func fieldErr(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func (e *fieldError) Is(target error) bool { return target == ErrInvalidConfig }
