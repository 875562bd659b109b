package raftstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// Bounds of the audit keys, part of the fold like the state's others.
const (
	// MaxAuditKeys is how many audit keys the state keeps at most, newest
	// last; beyond it the oldest are forgotten even within their
	// retention (a rotation far shorter than the retention).
	MaxAuditKeys = 64
	// MaxAuditKeyRetention bounds an audit key's retention.
	MaxAuditKeyRetention = 366 * 24 * time.Hour
	// maxAuditKeyID bounds an audit key's id (an IP hash's key id is
	// [A-Za-z0-9_-]{1,32}: events.IPHasher).
	maxAuditKeyID = 32
)

// auditKeyIDLabel separates the key id's hash from any other use of the key.
const auditKeyIDLabel = "chimalli audit key id v1\x00"

// AuditKeyID names a cluster audit key: "c" and 8 hex digits of
// SHA-256(label || key). Different keys get different ids (in practice),
// so a hash names the key it was made with, across cluster rebuilds too,
// and the id reveals no bit of the key.
func AuditKeyID(key [32]byte) string {
	h := sha256.New()
	h.Write([]byte(auditKeyIDLabel))
	h.Write(key[:])
	return "c" + hex.EncodeToString(h.Sum(nil)[:4])
}

// ValidAuditKeyID reports whether id is [A-Za-z0-9_-]{1,32}: the key ids
// the fold accepts, and the ones audit records may carry.
func ValidAuditKeyID(id string) bool {
	if len(id) == 0 || len(id) > maxAuditKeyID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkAuditKey validates an audit key as an event or a snapshot carries it.
func checkAuditKey(k *AuditKeyData) error {
	switch {
	case k == nil:
		return fmt.Errorf("%w: no audit key payload", ErrInvalidEvent)
	case !ValidAuditKeyID(k.ID):
		return fmt.Errorf("%w: audit key id %q is not [A-Za-z0-9_-]{1,%d}", ErrInvalidEvent, k.ID, maxAuditKeyID)
	case k.Retention < 0 || k.Retention > MaxAuditKeyRetention:
		return fmt.Errorf("%w: audit key retention %v out of range", ErrInvalidEvent, k.Retention)
	}
	return nil
}

// applyAuditKey adds a key, which is current from now on: the one before
// it retires now, and is forgotten once its retention has passed. A key
// whose id the state holds already changes nothing.
func (s *State) applyAuditKey(t time.Time, e Event) (bool, tofu.Pin, error) {
	if err := checkAuditKey(e.AuditKey); err != nil {
		return false, tofu.Pin{}, err
	}
	for _, k := range s.audit {
		if k.ID == e.AuditKey.ID {
			return false, tofu.Pin{}, nil
		}
	}
	k := *e.AuditKey
	k.Retention = k.Retention.Truncate(time.Second) // what the wire carries
	k.Created, k.Retired = t, time.Time{}
	if n := len(s.audit); n > 0 {
		s.audit[n-1].Retired = t
	}
	s.audit = append(s.audit, k)
	if n := len(s.audit); n > MaxAuditKeys {
		s.audit = slices.Clone(s.audit[n-MaxAuditKeys:])
	}
	s.auditGen++
	s.expireAuditKeys(t) // a retention of zero ends with the replacement
	return true, tofu.Pin{}, nil
}

// expireAuditKeys forgets the retired keys whose retention has passed at
// t. The current (last) key is never forgotten.
func (s *State) expireAuditKeys(t time.Time) {
	n := len(s.audit)
	keep := 0
	for i, k := range s.audit {
		if i == n-1 || t.Before(k.Retired.Add(k.Retention)) {
			s.audit[keep] = k
			keep++
		}
	}
	if keep < n {
		clear(s.audit[keep:])
		s.audit = s.audit[:keep]
		s.auditGen++
	}
}

// AuditKeys returns the audit keys, newest (current) last.
func (s *State) AuditKeys() []AuditKeyData { return slices.Clone(s.audit) }

// AuditKeyGen counts the changes to the audit keys (added or forgotten)
// since s was made or restored, for an owner that republishes them only
// when they changed. It is not part of the state: snapshots leave it out.
func (s *State) AuditKeyGen() uint64 { return s.auditGen }
