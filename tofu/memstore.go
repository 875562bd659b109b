package tofu

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// MemStore is a Store held in memory: a map guarded by a read-write mutex.
// All methods are safe for concurrent use. Use NewMemStore to create one.
type MemStore struct {
	mu   sync.RWMutex
	pins map[PinKey]Pin
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{pins: make(map[PinKey]Pin)}
}

// Lookup returns the pin for key. It does not allocate.
func (s *MemStore) Lookup(key PinKey) (Pin, bool) {
	s.mu.RLock()
	p, ok := s.pins[key]
	s.mu.RUnlock()
	return p, ok
}

// Claim records p if p.Key has no pin and returns the pin in force: p when
// it won, the existing pin otherwise. It never blocks on I/O; it returns
// ctx.Err() if ctx has already ended.
func (s *MemStore) Claim(ctx context.Context, p Pin) (Pin, error) {
	if err := ctx.Err(); err != nil {
		return Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	if err := p.Validate(); err != nil {
		return Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pins[p.Key]; ok {
		return old, nil
	}
	s.pins[p.Key] = p
	return p, nil
}

// Forget removes the pin for key and reports whether there was one. The
// next identity to use the key will claim it afresh.
func (s *MemStore) Forget(key PinKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pins[key]
	delete(s.pins, key)
	return ok
}

// All returns a copy of every pin, sorted by kind then scope.
func (s *MemStore) All() []Pin {
	s.mu.RLock()
	out := make([]Pin, 0, len(s.pins))
	for _, p := range s.pins {
		out = append(out, p)
	}
	s.mu.RUnlock()
	sortPins(out)
	return out
}

// Len returns the number of pins.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pins)
}

// put records p unconditionally. FileStore calls it after p is on disk.
func (s *MemStore) put(p Pin) {
	s.mu.Lock()
	s.pins[p.Key] = p
	s.mu.Unlock()
}

// sortPins sorts pins by key.
func sortPins(pins []Pin) {
	slices.SortFunc(pins, func(a, b Pin) int { return compareKeys(a.Key, b.Key) })
}
