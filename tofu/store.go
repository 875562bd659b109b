package tofu

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Store holds pins. Implementations: MemStore (one process), FileStore (a
// MemStore persisted to a file; the `chimalli get` known-hosts file) and the
// Raft-replicated store in package raftstore (a cluster).
type Store interface {
	// Lookup returns the pin in force for key from a local view. It is safe
	// for concurrent use, never blocks on I/O or the network, and does not
	// allocate on a hit in MemStore and FileStore.
	Lookup(key PinKey) (Pin, bool)

	// Claim records p if p.Key has no pin and returns the pin in force
	// afterwards: p itself when this claim won, the existing pin otherwise.
	// Concurrent claims on one key resolve to exactly one winner
	// (linearizable), and every caller is returned that winner.
	//
	// When p wins, the returned pin must be Equal to p: a store keeps the
	// identity and both times as given, to the nanosecond (Check tells the
	// winner from the losers that way). Claim may block (the Raft store
	// commits before returning) and returns ctx.Err() when ctx ends first;
	// an error means the caller must not treat p as in force. An invalid p
	// is refused with an error wrapping ErrInvalidPin.
	Claim(ctx context.Context, p Pin) (Pin, error)
}

// ErrNoPin is returned (wrapped) when removing a pin that does not exist.
var ErrNoPin = errors.New("no pin")

// Outcome is the result of checking an identity against a pin.
type Outcome uint8

// Outcomes. The zero Outcome is not a valid outcome; Check returns it only
// together with an error.
const (
	// FirstUse: there was no pin and this caller's claim created it.
	FirstUse Outcome = iota + 1
	// Match: the identity matches the pin in force.
	Match
	// Mismatch: another identity holds the pin.
	Mismatch
)

// String returns "first_use", "match" or "mismatch" (the spelling used in
// events and metrics), or "outcome(N)" for an invalid outcome.
func (o Outcome) String() string {
	switch o {
	case FirstUse:
		return "first_use"
	case Match:
		return "match"
	case Mismatch:
		return "mismatch"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Compare checks id against pinned. It is Match when id presents the pinned
// certificate, or any certificate with the pinned public key: a certificate
// renewed with the same key pair keeps the trust that the old one earned,
// since possession of the private key is what TOFU establishes. Anything
// else, including a zero id (no certificate), is Mismatch. Compare is pure
// and does not allocate.
func Compare(pinned Pin, id Identity) Outcome {
	if id.IsZero() {
		return Mismatch
	}
	if id.Cert == pinned.Identity.Cert || id.SPKI == pinned.Identity.SPKI {
		return Match
	}
	return Mismatch
}

// Check makes the trust-on-first-use decision for id on key. It looks the
// key up first (the fast path: no write); when there is no pin it claims
// one, stamped Created=now and NotAfter=notAfter (both in UTC). It reports
// FirstUse only to the caller whose claim won; a caller that lost a race
// gets Match or Mismatch against the winner, like every later caller.
//
// Two concurrent first uses with the same identity and the same now and
// notAfter cannot be told apart: both report FirstUse, which is the same
// trust decision made twice.
//
// The error wraps ErrInvalidPin for an invalid key or a zero id, or is the
// store's Claim error; the Outcome is then zero and the caller must refuse.
func Check(ctx context.Context, s Store, key PinKey, id Identity, now, notAfter time.Time) (Outcome, Pin, error) {
	if err := key.Validate(); err != nil {
		return 0, Pin{}, fmt.Errorf("check %v: %w", key, err)
	}
	if id.IsZero() {
		return 0, Pin{}, fmt.Errorf("check %v: %w: zero identity", key, ErrInvalidPin)
	}
	if p, ok := s.Lookup(key); ok {
		return Compare(p, id), p, nil
	}
	want := Pin{Key: key, Identity: id, NotAfter: notAfter.UTC(), Created: now.UTC()}
	got, err := s.Claim(ctx, want)
	if err != nil {
		return 0, Pin{}, fmt.Errorf("check %v: %w", key, err)
	}
	if got.Equal(want) {
		return FirstUse, got, nil
	}
	return Compare(got, id), got, nil
}
