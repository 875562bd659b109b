package ratelimit

import (
	"sync"
	"unsafe"
)

// sampleSize is how many entries eviction looks at when no full bucket is
// at hand, as Redis' approximate LRU does.
const sampleSize = 8

// shardState is one slice of the key table.
type shardState struct {
	mu sync.Mutex
	m  map[Key]entry
	// limit is this shard's share of MaxKeys.
	limit int
	// peak is the largest len(m) since m was last allocated; Sweep uses it
	// to decide when rebuilding m would return memory.
	peak int
}

const cacheLine = 64

// shard pads shardState to whole cache lines so neighbouring shards'
// mutexes do not share one.
type shard struct {
	shardState
	_ [cacheLine - unsafe.Sizeof(shardState{})%cacheLine]byte
}

// evictOne makes room for one new key in a full shard: the first full
// bucket of a random sample, otherwise the least recently seen entry of
// the sample. The caller holds s.mu and len(s.m) > 0.
func (s *shardState) evictOne(b *buckets, now int64) {
	var (
		victim Key
		oldest int64
		n      int
	)
	for k, e := range s.m { // map iteration starts at a random slot
		if b.full(e, now) {
			delete(s.m, k)
			return
		}
		if n == 0 || e.last < oldest {
			victim, oldest = k, e.last
		}
		n++
		if n == sampleSize {
			break
		}
	}
	delete(s.m, victim)
}

// sweep drops every full bucket and returns how many it dropped. When the
// map holds at most a quarter of its peak, it is rebuilt so that the memory
// of an attack is returned. The caller holds s.mu.
func (s *shardState) sweep(b *buckets, now int64) int {
	dropped := 0
	for k, e := range s.m {
		if b.full(e, now) {
			delete(s.m, k)
			dropped++
		}
	}
	if s.peak >= shrinkMin && len(s.m) <= s.peak/4 {
		m := make(map[Key]entry, len(s.m))
		for k, e := range s.m {
			m[k] = e
		}
		s.m = m
		s.peak = len(m)
	}
	return dropped
}

// shrinkMin is the peak below which sweep never rebuilds a map.
const shrinkMin = 64
