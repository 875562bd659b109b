package ratelimit

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
)

func newBenchLimiter(b *testing.B, cfg Config) *Limiter {
	b.Helper()
	l, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkAllow measures one key, uncontended, with the real clock.
func BenchmarkAllow(b *testing.B) {
	l := newBenchLimiter(b, DefaultConfig())
	addr := netip.MustParseAddr("2001:db8::1")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(addr)
	}
}

// BenchmarkAllowParallel spreads goroutines over 64Ki keys; run it with
// -cpu 1,2 to see how the shards scale.
func BenchmarkAllowParallel(b *testing.B) {
	const keys = 1 << 16
	addrs := make([]netip.Addr, keys)
	for i := range addrs {
		addrs[i] = v6(uint32(i))
	}
	l := newBenchLimiter(b, DefaultConfig())
	for _, a := range addrs {
		l.Allow(a)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919) // distinct starting points
		for pb.Next() {
			l.Allow(addrs[i%keys])
			i++
		}
	})
}

// BenchmarkAllowRotating sends every call from a new address to a table
// already holding MaxKeys (1<<20) keys, so every call evicts.
func BenchmarkAllowRotating(b *testing.B) {
	cfg := DefaultConfig()
	l := newBenchLimiter(b, cfg)
	i := uint32(0)
	for ; l.Len() < cfg.MaxKeys; i++ {
		l.Allow(v4(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.Allow(v4(i))
		i++
	}
	b.StopTimer()
	if n := l.Len(); n > cfg.MaxKeys {
		b.Fatalf("Len() = %d > MaxKeys", n)
	}
}

// heapOf1M fills a default limiter with 1,000,000 distinct IPv4 keys and
// returns the live heap it holds and the number of keys it kept (a few may
// have been evicted from shards that the hash filled first).
func heapOf1M() (bytes uint64, keys int) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := New(DefaultConfig())
	if err != nil {
		panic(err)
	}
	for i := range uint32(1_000_000) {
		l.Allow(v4(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	keys = l.Len()
	runtime.KeepAlive(l)
	return after.HeapAlloc - before.HeapAlloc, keys
}

// BenchmarkMemory1M reports the heap held by 1M keys (bytes/key, MiB).
func BenchmarkMemory1M(b *testing.B) {
	var bytes uint64
	var keys int
	for b.Loop() {
		bytes, keys = heapOf1M()
	}
	b.ReportMetric(float64(bytes)/float64(keys), "bytes/key")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB")
	b.ReportMetric(float64(keys), "keys")
}

// TestMemory1M asserts the memory budget of the default cap: 1M keys in at
// most 128 MiB of heap.
func TestMemory1M(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills 1M keys; skipped with -short and under -race")
	}
	bytes, keys := heapOf1M()
	t.Logf("%d keys hold %.1f MiB (%.1f bytes/key)", keys, float64(bytes)/(1<<20), float64(bytes)/float64(keys))
	if keys < 990_000 {
		t.Errorf("only %d of 1,000,000 keys kept under MaxKeys 1<<20", keys)
	}
	if bytes > 128<<20 {
		t.Errorf("1M keys hold %.1f MiB, want <= 128 MiB", float64(bytes)/(1<<20))
	}
}
