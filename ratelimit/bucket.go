package ratelimit

import (
	"math"
	"time"
)

// entry is one bucket. It holds no pointers, so the garbage collector never
// scans a shard's map.
type entry struct {
	// tokens is the balance at time last; negative is debt.
	tokens float64
	// last is when the bucket was last seen, in nanoseconds since the
	// limiter started; it is both the refill reference and the recency.
	last int64
	// violations counts Soft and Hard verdicts, saturating.
	violations uint32
}

// buckets holds the bucket arithmetic shared by every shard.
type buckets struct {
	capacity  float64
	refill    float64 // tokens per second
	softFloor float64 // lowest balance that is still Soft: -(HardFactor-1)*Capacity
	debtFloor float64 // lowest balance: -HardFactor*Capacity
}

// balance returns e's balance at now, refilled but not yet taken from.
func (b *buckets) balance(e entry, now int64) float64 {
	dt := now - e.last
	if dt <= 0 {
		return e.tokens
	}
	t := b.refilled(e.tokens, dt)
	if t > b.capacity {
		return b.capacity
	}
	return t
}

// refilled returns a balance of tokens dt > 0 nanoseconds later, before
// the cap. It is the one place refill arithmetic happens, so that
// RetryAfter and later calls round alike.
func (b *buckets) refilled(tokens float64, dt int64) float64 {
	return tokens + float64(dt)*b.refill/1e9
}

// full reports whether e has refilled to capacity at now, so that dropping
// it changes no future verdict.
func (b *buckets) full(e entry, now int64) bool {
	return b.balance(e, now) >= b.capacity
}

// take refills e to now and takes one token, flooring the debt. A bucket
// found full starts its violation count afresh: the count is of verdicts
// since the bucket was last full, whether or not a sweep dropped it.
func (b *buckets) take(e *entry, now int64) {
	bal := b.balance(*e, now)
	if bal >= b.capacity {
		e.violations = 0
	}
	e.tokens = bal - 1
	if e.tokens < b.debtFloor {
		e.tokens = b.debtFloor
	}
	if now > e.last {
		e.last = now
	}
}

// result turns the balance after a take into a Result.
func (b *buckets) result(e entry) Result {
	r := Result{Violations: e.violations}
	switch {
	case e.tokens >= 0:
		r.Verdict = Allow
		return r
	case e.tokens >= b.softFloor:
		r.Verdict = Soft
	default:
		r.Verdict = Hard
	}
	r.RetryAfter = b.untilOneToken(e.tokens)
	return r
}

// untilOneToken returns how long a bucket at balance tokens (< 1) takes to
// hold one token: the least d in nanoseconds with refilled(tokens, d) >= 1,
// so that a request exactly RetryAfter later is allowed and one a
// nanosecond earlier is not. The closed form can be a nanosecond off
// through float rounding; a few steps of correction fix that (beyond
// 2^53 ns, about 104 days, it is only approximate).
func (b *buckets) untilOneToken(tokens float64) time.Duration {
	ns := math.Ceil((1 - tokens) / b.refill * 1e9)
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	d := max(int64(ns), 1)
	for i := 0; i < 4 && b.refilled(tokens, d) < 1; i++ {
		d++
	}
	for i := 0; i < 4 && d > 1 && b.refilled(tokens, d-1) >= 1; i++ {
		d--
	}
	return time.Duration(d)
}
