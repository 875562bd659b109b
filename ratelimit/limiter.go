package ratelimit

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"
)

// maxShards bounds the number of shards; minShardKeys is the smallest
// share of MaxKeys a shard gets when MaxKeys is small.
const (
	maxShards    = 256
	minShardKeys = 64
)

// Limiter is a table of token buckets keyed by client prefix. Create one
// with New; it is safe for concurrent use and needs no Close.
type Limiter struct {
	b          buckets
	v4bits     int
	v6bits     int
	now        func() time.Time // nil: the monotonic clock via time.Since
	start      time.Time
	seed       uint64
	shardShift uint // 64 - log2(len(shards))
	shards     []shard
}

// New returns a Limiter for cfg, or an error matching ErrInvalidConfig.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit config: %w", err)
	}
	start := time.Now()
	if cfg.Now != nil {
		start = cfg.Now()
	}
	n := shardCount(cfg.MaxKeys)
	l := &Limiter{
		b: buckets{
			capacity:  cfg.Capacity,
			refill:    cfg.RefillPerSec,
			softFloor: -(cfg.HardFactor - 1) * cfg.Capacity,
			debtFloor: -cfg.HardFactor * cfg.Capacity,
		},
		v4bits:     cfg.IPv4Prefix,
		v6bits:     cfg.IPv6Prefix,
		now:        cfg.Now,
		start:      start,
		seed:       rand.Uint64(),
		shardShift: uint(64 - bits.TrailingZeros(uint(n))),
		shards:     make([]shard, n),
	}
	for i := range l.shards {
		limit := cfg.MaxKeys / n
		if i < cfg.MaxKeys%n {
			limit++
		}
		l.shards[i].init(limit)
	}
	return l, nil
}

// shardCount returns the largest power of two that is at most maxShards
// and leaves every shard at least minShardKeys of maxKeys (at least 1).
func shardCount(maxKeys int) int {
	n := 1
	for n < maxShards && maxKeys/(2*n) >= minShardKeys {
		n *= 2
	}
	return n
}

// elapsed returns the time since the limiter started, in nanoseconds. With
// clocks that carry a monotonic reading (time.Now) it ignores wall-clock
// jumps. Without an injected clock it uses time.Since, which reads only the
// monotonic clock: half the cost of time.Now, which reads both.
func (l *Limiter) elapsed() int64 {
	if l.now == nil {
		return int64(time.Since(l.start))
	}
	return int64(l.now().Sub(l.start))
}

// shardOf returns the shard holding k.
func (l *Limiter) shardOf(k Key) *shard {
	if l.shardShift == 64 {
		return &l.shards[0]
	}
	return &l.shards[k.shardHash(l.seed)>>l.shardShift]
}

// Allow takes one token from addr's bucket and returns the verdict. It
// blocks on nothing but its shard's mutex, and it does not allocate once
// the shard's table has grown (new keys grow it, amortised, up to the cap).
func (l *Limiter) Allow(addr netip.Addr) Result {
	k := KeyOf(addr, l.v4bits, l.v6bits)
	now := l.elapsed()
	s := l.shardOf(k)

	s.mu.Lock()
	e := s.lookup(k)
	if e == nil {
		e = s.insert(k, entry{tokens: l.b.capacity, last: now}, &l.b, now)
	}
	l.b.take(e, now)
	if e.tokens < 0 && e.violations < math.MaxUint32 {
		e.violations++
	}
	after := *e
	s.mu.Unlock()

	return l.b.result(after)
}

// Violations returns the count of Soft and Hard verdicts of addr's key, or
// 0 when the key is not tracked.
func (l *Limiter) Violations(addr netip.Addr) uint32 {
	k := KeyOf(addr, l.v4bits, l.v6bits)
	s := l.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(k); e != nil {
		return e.violations
	}
	return 0
}

// ResetPrefix forgets every bucket whose key lies inside p, violation
// counts included, so that those clients start afresh with a full bucket;
// it returns how many it forgot. It is what lifting a ban calls. A prefix
// as long as the limiter's keys (or longer) is one map probe; a wider one
// (a /24 ban over /32 keys) scans every shard, one at a time. IPv4-mapped
// prefixes are unmapped first; an invalid prefix forgets nothing.
func (l *Limiter) ResetPrefix(p netip.Prefix) int {
	p, ok := unmapPrefix(p)
	if !ok {
		return 0
	}
	keyBits := l.v6bits
	if p.Addr().Is4() {
		keyBits = l.v4bits
	}
	if p.Bits() >= keyBits {
		k := KeyOf(p.Addr(), l.v4bits, l.v6bits)
		s := l.shardOf(k)
		s.mu.Lock()
		defer s.mu.Unlock()
		if i, ok := s.index[k]; ok {
			s.remove(k, i)
			return 1
		}
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, at := range s.index {
			if k != invalidKey && p.Contains(k.Addr()) {
				s.remove(k, at)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// unmapPrefix returns p masked, with an IPv4-mapped prefix turned into its
// IPv4 form (::ffff:192.0.2.0/120 is 192.0.2.0/24) and any zone dropped.
func unmapPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, false
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a.WithZone(""), bits).Masked(), true
}

// Sweep drops every bucket that has refilled to full (its key has been
// quiet long enough to be indistinguishable from a new one, violation
// count aside) and returns how many it dropped. It locks one shard at a
// time, so Allow on other shards proceeds meanwhile.
func (l *Limiter) Sweep() int {
	now := l.elapsed()
	dropped := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		dropped += s.sweep(&l.b, now)
		s.mu.Unlock()
	}
	return dropped
}

// Len returns the number of tracked keys. Under concurrent use it is a
// snapshot taken one shard at a time.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}
