package events

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"strings"
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
	pool sync.Pool // of *hashScratch
}

// hashScratch is a keyed HMAC with its input and output buffers, pooled
// together so that hashing an address allocates only the result.
type hashScratch struct {
	mac hash.Hash
	in  [16]byte
	sum [sha256.Size]byte
}

// NewIPHasher returns a hasher for key, named id in its output.
func NewIPHasher(id string, key []byte) (*IPHasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortKey, len(key), MinKeyBytes)
	}
	k := append([]byte(nil), key...)
	h := &IPHasher{id: id}
	h.pool.New = func() any { return &hashScratch{mac: hmac.New(sha256.New, k)} }
	return h, nil
}

// NewRandomIPHasher returns a hasher with a fresh random key, for a node
// that has no cluster-wide key: hashes are then stable for the life of the
// process only.
func NewRandomIPHasher() (*IPHasher, error) {
	return newRandomIPHasher(rand.Reader)
}

// newRandomIPHasher reads the key from random.
func newRandomIPHasher(random io.Reader) (*IPHasher, error) {
	key := make([]byte, MinKeyBytes)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("ip hash key: %w", err)
	}
	return NewIPHasher(randomKeyID(key), key)
}

// keyIDLabel separates the key id's hash from any other use of the key.
const keyIDLabel = "chimalli ip-hash key id v1\x00"

// randomKeyID names key "p" and 6 hex digits of SHA-256(keyIDLabel || key):
// enough to tell one process's key from another's in audit records, and
// nothing of the key itself.
func randomKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	return "p" + hex.EncodeToString(h.Sum(nil)[:3])
}

// KeyID returns the id that prefixes every hash.
func (h *IPHasher) KeyID() string { return h.id }

// HashAddr returns the keyed hash of addr. It allocates only the string
// it returns.
func (h *IPHasher) HashAddr(addr netip.Addr) string {
	sc := h.pool.Get().(*hashScratch)
	addr = addr.Unmap()
	var in []byte
	if addr.Is4() {
		a4 := addr.As4()
		in = append(sc.in[:0], a4[:]...)
	} else if addr.IsValid() {
		a16 := addr.As16()
		in = append(sc.in[:0], a16[:]...)
	}
	sc.mac.Reset()
	sc.mac.Write(in)
	out := sc.mac.Sum(sc.sum[:0])
	var hx [2 * HashBytes]byte
	hex.Encode(hx[:], out[:HashBytes])
	h.pool.Put(sc)
	var b strings.Builder
	b.Grow(len(h.id) + 1 + len(hx))
	b.WriteString(h.id)
	b.WriteByte(':')
	b.Write(hx[:])
	return b.String()
}
