package ratelimit

import (
	"math"
	"strconv"
	"time"
)

// Verdict is the limiter's answer to one request.
type Verdict uint8

const (
	// Allow means the request may be served.
	Allow Verdict = iota
	// Soft means the request is refused politely: the gateway answers
	// "44 <seconds>" after the handshake.
	Soft
	// Hard means the connection is closed at accept, before the TLS
	// handshake.
	Hard
)

// String returns "allow", "soft" or "hard".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Soft:
		return "soft"
	case Hard:
		return "hard"
	default:
		return "verdict(" + strconv.Itoa(int(v)) + ")"
	}
}

// Result is the outcome of Limiter.Allow.
type Result struct {
	// Verdict says whether the request is allowed, softly or hard limited.
	Verdict Verdict
	// RetryAfter is zero for Allow; for Soft and Hard it is the time until
	// the bucket holds at least one token again, i.e. until the next request
	// would be allowed (if none is made in between).
	RetryAfter time.Duration
	// Violations is the key's count of Soft and Hard verdicts, this one
	// included.
	Violations uint32
}

// RetryAfterSeconds returns RetryAfter rounded up to whole seconds, at
// least 1, for the Gemini "44 <seconds>" status. It returns 0 when
// RetryAfter is zero (an Allow verdict).
func (r Result) RetryAfterSeconds() int {
	if r.RetryAfter <= 0 {
		return 0
	}
	s := r.RetryAfter / time.Second
	if r.RetryAfter%time.Second != 0 {
		s++
	}
	if s > math.MaxInt {
		return math.MaxInt // 32-bit platforms
	}
	return int(s)
}
