package events

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"sync"
)

// HashBytes is how many bytes of the HMAC output an address hash keeps:
// 128 bits, collision-free in practice for any number of clients, while
// the key keeps the mapping one-way for anyone without it.
const HashBytes = 16

// MinKeyBytes is the shortest hashing key accepted.
const MinKeyBytes = 32

// ErrShortKey is returned by NewIPHasher for a key under MinKeyBytes.
var ErrShortKey = errors.New("ip hash key too short")

// IPHasher maps client addresses to "<key id>:<32 hex>" with
// HMAC-SHA256(key, address bytes). IPv4-mapped IPv6 addresses are unmapped
// first, so one client hashes alike over IPv4 and IPv6 sockets. It is safe
// for concurrent use.
type IPHasher struct {
	id   string
	pool sync.Pool // of hash.Hash keyed with the key
}

// NewIPHasher returns a hasher for key, named id in its output.
func NewIPHasher(id string, key []byte) (*IPHasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortKey, len(key), MinKeyBytes)
	}
	k := append([]byte(nil), key...)
	h := &IPHasher{id: id}
	h.pool.New = func() any { return hmac.New(sha256.New, k) }
	return h, nil
}

// NewRandomIPHasher returns a hasher with a fresh random key, for a node
// that has no cluster-wide key: hashes are then stable for the life of the
// process only.
func NewRandomIPHasher() (*IPHasher, error) {
	key := make([]byte, MinKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("ip hash key: %w", err)
	}
	id := "p" + hex.EncodeToString(key[:3]) // names the key, reveals nothing useful
	return NewIPHasher(id, key)
}

// KeyID returns the id that prefixes every hash.
func (h *IPHasher) KeyID() string { return h.id }

// HashAddr returns the keyed hash of addr.
func (h *IPHasher) HashAddr(addr netip.Addr) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	b := addr.Unmap().AsSlice()
	m.Write(b)
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])
	h.pool.Put(m)
	buf := make([]byte, 0, len(h.id)+1+2*HashBytes)
	buf = append(buf, h.id...)
	buf = append(buf, ':')
	buf = hex.AppendEncode(buf, out[:HashBytes])
	return string(buf)
}
