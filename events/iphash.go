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
	"sync/atomic"

	"github.com/chimalli/chimalli/raftstore"
)

// HashBytes is how many bytes of the HMAC output an address hash keeps:
// 128 bits, collision-free in practice for any number of clients, while
// the key keeps the mapping one-way for anyone without it.
const HashBytes = 16

// MinKeyBytes is the shortest hashing key accepted.
const MinKeyBytes = 32

// ErrShortKey is returned by NewIPHasher for a key under MinKeyBytes.
var ErrShortKey = errors.New("ip hash key too short")

// KeySource gives an IPHasher the key in force: the cluster's current
// audit key, which the Raft leader rotates (raftstore/cluster's Node
// implements it). ok is false while there is none yet. The hasher calls it
// on every hash: it must be cheap, lock-free and safe for concurrent use,
// and the caller must not modify key. A key id names one key only: the
// hasher keys its HMAC anew when the id changes, never for the same id.
type KeySource interface {
	CurrentAuditKey() (id string, key []byte, ok bool)
}

// IPHasher maps client addresses to "<key id>:<32 hex>" with
// HMAC-SHA256(key, address bytes). IPv4-mapped IPv6 addresses are unmapped
// first, so one client hashes alike over IPv4 and IPv6 sockets. Its key is
// fixed, or the one a KeySource has in force (with a key of its own until
// the source has one). It is safe for concurrent use.
type IPHasher struct {
	src KeySource                 // nil: own only
	own *keyedHash                // the fixed key, or the fallback while src has none
	cur atomic.Pointer[keyedHash] // the last key taken from src
}

// keyedHash is one key's HMACs, pooled, and the key's id.
type keyedHash struct {
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

func newKeyedHash(id string, key []byte) *keyedHash {
	k := append([]byte(nil), key...)
	h := &keyedHash{id: id}
	h.pool.New = func() any { return &hashScratch{mac: hmac.New(sha256.New, k)} }
	return h
}

// NewIPHasher returns a hasher for key, named id in its output.
func NewIPHasher(id string, key []byte) (*IPHasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortKey, len(key), MinKeyBytes)
	}
	return &IPHasher{own: newKeyedHash(id, key)}, nil
}

// NewIPHasherFrom returns a hasher that hashes with src's key in force, so
// that every node of a cluster hashes a client alike with the day's key.
// Until src has a key (a new cluster's first seconds, before its first key
// commits), and whenever it offers a key shorter than MinKeyBytes or an id
// that is not [A-Za-z0-9_-]{1,32}, it hashes
// with a random key of its own, drawn now, as NewRandomIPHasher's: never
// with no key at all.
func NewIPHasherFrom(src KeySource) (*IPHasher, error) {
	h, err := NewRandomIPHasher()
	if err != nil {
		return nil, err
	}
	h.src = src
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

// keyed returns the key in force: src's current key, or the hasher's own.
func (h *IPHasher) keyed() *keyedHash {
	if h.src == nil {
		return h.own
	}
	id, key, ok := h.src.CurrentAuditKey()
	if !ok || len(key) < MinKeyBytes {
		return h.own
	}
	if k := h.cur.Load(); k != nil && k.id == id {
		return k
	}
	if !raftstore.ValidAuditKeyID(id) { // records would be refused: keep to the own key
		return h.own
	}
	// A new key (once a rotation): build its HMACs. Hashers racing here
	// each build one; the last stored wins, and a later call corrects a
	// stale one by its id.
	k := newKeyedHash(id, key)
	h.cur.Store(k)
	return k
}

// KeyID returns the id of the key in force, which prefixes every hash.
func (h *IPHasher) KeyID() string { return h.keyed().id }

// HashAddr returns the keyed hash of addr under the key in force. It
// allocates only the string it returns (and, once per key, the key's
// HMACs).
func (h *IPHasher) HashAddr(addr netip.Addr) string {
	k := h.keyed()
	sc := k.pool.Get().(*hashScratch)
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
	k.pool.Put(sc)
	var b strings.Builder
	b.Grow(len(k.id) + 1 + len(hx))
	b.WriteString(k.id)
	b.WriteByte(':')
	b.Write(hx[:])
	return b.String()
}
