// Package ratelimit is the per-node token-bucket rate limiter of the Chimalli
// gateway.
//
// # Keys
//
// Clients are grouped by address prefix: an IPv4 address by its /32 and an
// IPv6 address by its /64 by default (Config.IPv4Prefix, Config.IPv6Prefix),
// since one IPv6 subscriber usually holds a whole /64. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d) are unmapped first, so a client counts once
// whether it arrives over a dual-stack socket or not. A Key is a fixed-size
// comparable value, so a lookup allocates nothing.
//
// # Buckets, debt and verdicts
//
// Every key owns one bucket holding up to Capacity tokens (the burst),
// refilled continuously at RefillPerSec tokens per second. Each call to
// Limiter.Allow takes one token, even when the answer is no, so the bucket
// can go into debt. The balance after the take decides the verdict:
//
//	tokens >= 0                               Allow: serve the request
//	-(HardFactor-1)*Capacity <= tokens < 0    Soft:  answer "44 <seconds>"
//	tokens < -(HardFactor-1)*Capacity         Hard:  close at accept, no TLS handshake
//
// With the defaults (Capacity 10, RefillPerSec 1, HardFactor 3) a client
// that bursts gets 10 requests served, then 20 slow-down answers, then its
// connections are dropped before the handshake. The debt is floored at
// -HardFactor*Capacity (-30 by default): a client that keeps hammering stays
// hard-limited while it hammers, and a client that goes quiet is served
// again after at most (HardFactor*Capacity+1)/RefillPerSec seconds (31 s by
// default) and holds a full bucket after (HardFactor+1)*Capacity/RefillPerSec
// seconds (40 s).
//
// For Soft and Hard verdicts Result.RetryAfter is the time until the bucket
// holds at least one token again, that is until the next request would be
// allowed; Result.RetryAfterSeconds rounds it up to whole seconds for the
// Gemini "44" status.
//
// Every Soft or Hard verdict increments the key's violation counter, which
// is returned in each Result (and by Limiter.Violations) so that the
// auto-ban layer can turn persistent abuse into a cluster-wide ban. The
// counter covers the verdicts since the bucket was last full: a bucket that
// has refilled to full starts it afresh at its next request, and may be
// dropped (by eviction or Limiter.Sweep) with it. Limiter.ResetPrefix
// forgets the buckets inside a prefix at once, as lifting a ban does.
//
// # Limits are per node
//
// Buckets are never replicated: each node limits what it sees on its own.
// Behind a load balancer that spreads one client over N nodes, the effective
// cluster-wide limit is N times the configured limit. What crosses the
// cluster is the ban that an abusive client earns, not the buckets.
//
// # Memory and concurrency
//
// The table never holds more than MaxKeys keys (1<<20 by default; a
// million keys take about 80 bytes each, under 80 MiB of heap). When a new key arrives at a full table, a bucket that has
// refilled to full is evicted first (it is indistinguishable from an absent
// key apart from its violation count); otherwise the least recently seen key
// among a random sample of the shard is evicted, as in Redis' approximate
// LRU. An attacker rotating source addresses therefore cannot grow memory
// beyond the cap. Limiter.Sweep drops every full bucket and shrinks shards
// whose tables outgrew their contents; the node calls it periodically.
//
// A Limiter is safe for concurrent use. The table is split into up to 256
// shards, each a mutex, a map from key to slab position and a slab of
// buckets, none holding pointers (so the garbage collector does not scan
// them). Allow on a known key is one map lookup and an in-place update; it
// does not allocate, apart from amortised growth while the table fills.
//
// Time comes from Config.Now and is measured as a monotonic duration since
// the limiter was created, so a wall-clock jump neither refills nor drains
// buckets; a clock that steps backwards refills nothing.
package ratelimit
