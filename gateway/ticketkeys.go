package gateway

import (
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"
)

// TicketKey is a session ticket key: 32 random bytes from which the server
// derives the cipher that seals tickets and the id that names the key in
// each ticket.
type TicketKey [32]byte

// TicketKeys is where a Server gets its session ticket keys.
//
// TicketKeys(now) returns the keys in force at now: the first seals new
// tickets, every one of them opens tickets. A key must stay in the list as
// long as a ticket it sealed may still be resumed (the longest session
// lifetime after it stopped sealing), and should leave it then, since a
// TLS 1.2 ticket holds its connection's master secret. An empty list
// disables resumption until keys are back: the server then issues tickets
// that never resume.
//
// It is called on every handshake that offers or receives a ticket: it must
// be safe for concurrent use and must not block. It should return the same
// slice until the keys change; callers never modify it.
//
// LocalTicketKeys is the in-memory implementation; a cluster plugs in a
// source that every node shares, so any node resumes any node's sessions.
type TicketKeys interface {
	TicketKeys(now time.Time) []TicketKey
}

// LocalTicketKeys is a TicketKeys of random keys held in memory and lost
// with the process. A new key starts sealing every rotate; a key that stopped
// sealing still opens tickets for keep, then is forgotten. Rotation happens
// on the first call past its time, so no goroutine runs and tests drive it
// with their own clock.
type LocalTicketKeys struct {
	rotate, keep time.Duration

	view atomic.Pointer[localKeyView] // read without the lock until it expires
	mu   sync.Mutex                   // serialises rotations
	ring []localKey                   // newest first
}

type localKey struct {
	key     TicketKey
	created time.Time
	retired time.Time // when a newer key took over sealing; zero for the newest
}

// localKeyView is an immutable answer, valid until until.
type localKeyView struct {
	keys  []TicketKey
	until time.Time
}

// NewLocalTicketKeys returns a LocalTicketKeys that rotates every rotate and
// keeps a retired key for keep. Both must be > 0.
func NewLocalTicketKeys(rotate, keep time.Duration) *LocalTicketKeys {
	return &LocalTicketKeys{rotate: rotate, keep: keep}
}

// TicketKeys implements TicketKeys.
func (k *LocalTicketKeys) TicketKeys(now time.Time) []TicketKey {
	if v := k.view.Load(); v != nil && now.Before(v.until) {
		return v.keys
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if v := k.view.Load(); v != nil && now.Before(v.until) {
		return v.keys
	}
	if len(k.ring) == 0 || !now.Before(k.ring[0].created.Add(k.rotate)) {
		if len(k.ring) > 0 {
			k.ring[0].retired = now
		}
		var nk TicketKey
		rand.Read(nk[:]) // never fails: crypto/rand crashes the program instead
		k.ring = append([]localKey{{key: nk, created: now}}, k.ring...)
	}
	n := len(k.ring)
	for n > 1 && now.Sub(k.ring[n-1].retired) >= k.keep {
		n--
	}
	clear(k.ring[n:]) // no copy of a forgotten key stays in memory
	k.ring = k.ring[:n]

	v := &localKeyView{keys: make([]TicketKey, n), until: k.ring[0].created.Add(k.rotate)}
	for i, lk := range k.ring {
		v.keys[i] = lk.key
		if i > 0 {
			if end := lk.retired.Add(k.keep); end.Before(v.until) {
				v.until = end
			}
		}
	}
	k.view.Store(v)
	return v.keys
}

var _ TicketKeys = (*LocalTicketKeys)(nil)
