package ratelimit

import (
	"sync"
	"unsafe"
)

// sampleSize is how many entries eviction looks at when no full bucket is
// at hand, as Redis' approximate LRU does.
const sampleSize = 8

// shrinkMin is the peak below which sweep never rebuilds a shard.
const shrinkMin = 64

// shardState is one slice of the key table: an index from key to position
// and a slab of buckets. Neither holds pointers, so the garbage collector
// does not scan them, and Allow on a known key costs one map lookup and an
// in-place update. Every field is guarded by mu.
type shardState struct {
	mu sync.Mutex
	// index maps each tracked key to its bucket's position in entries.
	index map[Key]int32
	// entries holds the buckets; the positions in free are unused.
	entries []entry
	free    []int32
	// limit is this shard's share of MaxKeys: len(index) never exceeds it,
	// nor does len(entries).
	limit int
	// peak is the largest len(index) since the shard was last rebuilt;
	// sweep uses it to decide when rebuilding would return memory.
	peak int
}

const cacheLine = 64

// shard pads shardState to whole cache lines so neighbouring shards'
// mutexes do not share one.
type shard struct {
	shardState
	_ [cacheLine - unsafe.Sizeof(shardState{})%cacheLine]byte
}

func (s *shardState) init(limit int) {
	s.limit = limit
	s.index = make(map[Key]int32)
}

// lookup returns k's bucket, or nil. The pointer is valid while s.mu is
// held.
func (s *shardState) lookup(k Key) *entry {
	i, ok := s.index[k]
	if !ok {
		return nil
	}
	return &s.entries[i]
}

// insert adds k, not yet tracked, with bucket e, evicting another key first
// when the shard is full, and returns the new bucket (valid while s.mu is
// held).
func (s *shardState) insert(k Key, e entry, b *buckets, now int64) *entry {
	if len(s.index) >= s.limit {
		s.evictOne(b, now)
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		// No free position: len(entries) == len(index) < limit.
		if len(s.entries) == cap(s.entries) {
			s.grow()
		}
		i = int32(len(s.entries))
		s.entries = s.entries[:i+1]
	}
	s.entries[i] = e
	s.index[k] = i
	if len(s.index) > s.peak {
		s.peak = len(s.index)
	}
	return &s.entries[i]
}

// grow doubles the slab's capacity, never beyond limit.
func (s *shardState) grow() {
	n := min(s.limit, max(16, 2*cap(s.entries)))
	entries := make([]entry, len(s.entries), n)
	copy(entries, s.entries)
	s.entries = entries
}

// remove drops k, whose bucket is at position i.
func (s *shardState) remove(k Key, i int32) {
	delete(s.index, k)
	s.entries[i] = entry{}
	s.free = append(s.free, i)
}

// evictOne makes room for one new key in a full shard: the first full
// bucket of a random sample, otherwise the least recently seen entry of
// the sample. The caller holds s.mu and len(s.index) > 0.
func (s *shardState) evictOne(b *buckets, now int64) {
	var (
		victim Key
		at     int32
		oldest int64
		n      int
	)
	for k, i := range s.index { // map iteration starts at a random slot
		e := s.entries[i]
		if b.full(e, now) {
			s.remove(k, i)
			return
		}
		if n == 0 || e.last < oldest {
			victim, at, oldest = k, i, e.last
		}
		n++
		if n == sampleSize {
			break
		}
	}
	s.remove(victim, at)
}

// sweep drops every full bucket and returns how many it dropped. When the
// shard holds at most a quarter of its peak, it is rebuilt so that the
// memory of an attack is returned. The caller holds s.mu.
func (s *shardState) sweep(b *buckets, now int64) int {
	dropped := 0
	for k, i := range s.index {
		if b.full(s.entries[i], now) {
			s.remove(k, i)
			dropped++
		}
	}
	if s.peak >= shrinkMin && len(s.index) <= s.peak/4 {
		s.rebuild()
	}
	return dropped
}

// rebuild copies the live buckets into a fresh index and slab sized for
// them, dropping the free list.
func (s *shardState) rebuild() {
	index := make(map[Key]int32, len(s.index))
	entries := make([]entry, 0, len(s.index))
	for k, i := range s.index {
		index[k] = int32(len(entries))
		entries = append(entries, s.entries[i])
	}
	s.index, s.entries, s.free = index, entries, nil
	s.peak = len(index)
}
