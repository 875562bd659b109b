package raftstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// The snapshot format: JSON lines. The first line is a header; then one
// line per ban (by prefix), rule (by list, prefix), pin (by kind, scope),
// ticket key (oldest first), audit key (oldest first) and remembered
// idempotency key (oldest first).
// The order is fixed, so equal states give byte-identical snapshots, and
// StateHash is a hash of those bytes.

type snapHeader struct {
	V     int       `json:"v"`
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
	Bans  int       `json:"bans"`
	Rules int       `json:"rules"`
	Pins  int       `json:"pins"`
	Keys  int       `json:"ticket_keys"`
	Audit int       `json:"audit_keys"`
	Seen  int       `json:"applied"`
}

type snapBan struct {
	Prefix  netip.Prefix `json:"prefix"`
	Since   time.Time    `json:"since"`
	Until   *time.Time   `json:"until,omitempty"`
	Reason  string       `json:"reason"`
	Source  string       `json:"source"`
	Strikes int          `json:"strikes"`
}

type snapPin struct {
	Kind     string            `json:"kind"`
	Subject  string            `json:"subject"`
	Cert     *tofu.Fingerprint `json:"cert,omitempty"` // absent: the pin names the public key only
	SPKI     *tofu.Fingerprint `json:"spki,omitempty"` // absent: the pin names the certificate only
	NotAfter *time.Time        `json:"not_after,omitempty"`
	Created  time.Time         `json:"created"`
}

type snapTicketKey struct {
	ID      uint32    `json:"id"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

type snapAuditKey struct {
	ID         string     `json:"id"`
	Key        []byte     `json:"key"`
	RetentionS int64      `json:"retention_s"`
	Created    time.Time  `json:"created"`
	Retired    *time.Time `json:"retired,omitempty"` // absent for the current key
}

type snapApplied struct {
	Key   string    `json:"key"`
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
}

// Frozen is an immutable copy of a State, for a snapshot: taking one
// costs the ban changes since the last one and a copy of the small parts
// (rules, pins, ticket and audit keys, remembered idempotency keys), so the Raft FSM
// takes it between two entries and writes it while entries go on being
// applied.
type Frozen struct {
	index   uint64
	last    time.Time
	bans    *BanSet // every ban, remembered ones included
	rules   []Rule
	pins    []tofu.Pin
	tickets []TicketKeyData
	audit   []AuditKeyData
	keys    []snapApplied
}

// Freeze returns an immutable copy of s.
func (s *State) Freeze() *Frozen {
	f := &Frozen{index: s.index, last: s.last, bans: s.bans.frozen(), rules: s.Rules(), pins: s.Pins(),
		tickets: slices.Clone(s.tickets), audit: slices.Clone(s.audit)}
	live := s.order[s.head:]
	f.keys = make([]snapApplied, len(live))
	for i, key := range live {
		a := s.applied[key]
		f.keys[i] = snapApplied{Key: key, Index: a.Index, Time: a.Time.UTC()}
	}
	return f
}

// Index returns the index of the last entry the frozen state applied.
func (s *Frozen) Index() uint64 { return s.index }

// KeepFrozen brings the frozen ban set up to date when more than max bans
// changed since it last was, so that the next Freeze has at most max
// changes to catch up on: an owner that must not stall on a snapshot (the
// Raft FSM) calls it after each batch, spreading the work over batches.
func (s *State) KeepFrozen(max int) {
	if s.bans.every.set == nil || len(s.bans.every.touched) > max {
		s.bans.frozen()
	}
}

// WriteSnapshot writes the whole state to w in the snapshot format.
func (s *State) WriteSnapshot(w io.Writer) error { return s.Freeze().WriteSnapshot(w) }

// WriteSnapshot writes the frozen state to w in the snapshot format.
func (s *Frozen) WriteSnapshot(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	bans := s.bans.Bans()
	slices.SortFunc(bans, func(a, b Ban) int { return a.Prefix.Compare(b.Prefix) })
	rules, pins := s.rules, s.pins
	hdr := snapHeader{V: SchemaVersion, Index: s.index, Time: s.last.UTC(), Bans: len(bans), Rules: len(rules),
		Pins: len(pins), Keys: len(s.tickets), Audit: len(s.audit), Seen: len(s.keys)}
	if err := enc.Encode(hdr); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	for _, b := range bans {
		if err := enc.Encode(snapBan{Prefix: b.Prefix, Since: b.Since.UTC(), Until: timePtr(b.Until), Reason: b.Reason, Source: b.Source, Strikes: b.Strikes}); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for _, r := range rules {
		if err := enc.Encode(wireRule{List: r.List, Prefix: r.Prefix}); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for _, p := range pins {
		sp := snapPin{Kind: TrustKindName(p.Key.Kind), Subject: p.Key.Scope, NotAfter: timePtr(p.NotAfter), Created: p.Created.UTC()}
		sp.Cert, sp.SPKI = pinHalves(p.Identity)
		if err := enc.Encode(sp); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for _, k := range s.tickets {
		if err := enc.Encode(snapTicketKey{ID: k.ID, Key: k.Key[:], Created: k.Created.UTC()}); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for i, k := range s.audit {
		sk := snapAuditKey{ID: k.ID, Key: k.Key[:], RetentionS: int64(k.Retention / time.Second), Created: k.Created.UTC()}
		if i < len(s.audit)-1 {
			retired := k.Retired.UTC()
			sk.Retired = &retired
		}
		if err := enc.Encode(sk); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for _, a := range s.keys {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// SnapshotSize returns the length of the frozen state's snapshot
// (WriteSnapshot's bytes), writing it to nowhere: for a framing that
// names the length before the body.
func (s *Frozen) SnapshotSize() (int64, error) {
	cw := &countWriter{w: io.Discard}
	err := s.WriteSnapshot(cw)
	return cw.n, err
}

// pinHalves returns the fingerprints of id as a pin line carries them: nil
// for an absent (zero) half.
func pinHalves(id tofu.Identity) (cert, spki *tofu.Fingerprint) {
	var zero [32]byte
	if id.Cert != zero {
		f := id.CertFingerprint()
		cert = &f
	}
	if id.SPKI != zero {
		f := id.SPKIFingerprint()
		spki = &f
	}
	return cert, spki
}

// ErrBadSnapshot is wrapped by the errors of ReadSnapshot.
var ErrBadSnapshot = errors.New("bad snapshot")

// ReadSnapshot reads a state written by WriteSnapshot. It refuses a
// snapshot of another schema version (with an *UnknownVersionError),
// unknown fields, missing or extra lines and invalid entries.
func ReadSnapshot(r io.Reader) (*State, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.DisallowUnknownFields()
	var hdr snapHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if hdr.V != SchemaVersion {
		return nil, &UnknownVersionError{Version: hdr.V, Index: hdr.Index}
	}
	for _, n := range []int{hdr.Bans, hdr.Rules, hdr.Pins, hdr.Keys, hdr.Audit, hdr.Seen} {
		if n < 0 {
			return nil, fmt.Errorf("%w: header: negative count", ErrBadSnapshot)
		}
	}
	s := NewState()
	s.index, s.last = hdr.Index, hdr.Time.UTC()
	for i := range hdr.Bans {
		var b snapBan
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("%w: ban %d: %w", ErrBadSnapshot, i, err)
		}
		ban := Ban{Prefix: normalizePrefix(b.Prefix), Since: b.Since.UTC(), Reason: b.Reason, Source: b.Source, Strikes: b.Strikes}
		if b.Until != nil {
			ban.Until = b.Until.UTC()
		}
		if !ban.Prefix.IsValid() || ban.Prefix != b.Prefix || b.Strikes < 1 {
			return nil, fmt.Errorf("%w: ban %d: invalid", ErrBadSnapshot, i)
		}
		if _, dup := s.bans.bans[ban.Prefix]; dup {
			return nil, fmt.Errorf("%w: ban %d: duplicate prefix %s", ErrBadSnapshot, i, ban.Prefix)
		}
		s.bans.restore(ban)
	}
	for i := range hdr.Rules {
		var w wireRule
		if err := dec.Decode(&w); err != nil {
			return nil, fmt.Errorf("%w: rule %d: %w", ErrBadSnapshot, i, err)
		}
		rule, err := NormalizeRule(w.List, w.Prefix)
		if err != nil || rule.Prefix != w.Prefix {
			return nil, fmt.Errorf("%w: rule %d: invalid", ErrBadSnapshot, i)
		}
		s.rules[rule] = struct{}{}
	}
	for i := range hdr.Pins {
		var sp snapPin
		if err := dec.Decode(&sp); err != nil {
			return nil, fmt.Errorf("%w: pin %d: %w", ErrBadSnapshot, i, err)
		}
		kind, err := ParseTrustKind(sp.Kind)
		if err != nil {
			return nil, fmt.Errorf("%w: pin %d: invalid", ErrBadSnapshot, i)
		}
		var cert, spki tofu.Fingerprint
		if sp.Cert != nil {
			cert = *sp.Cert
		}
		if sp.SPKI != nil {
			spki = *sp.SPKI
		}
		id, err := trustIdentity(cert, spki)
		if err != nil {
			return nil, fmt.Errorf("%w: pin %d: %w", ErrBadSnapshot, i, err)
		}
		p := tofu.Pin{Key: tofu.PinKey{Kind: kind, Scope: sp.Subject}, Identity: id, Created: sp.Created.UTC()}
		if sp.NotAfter != nil {
			p.NotAfter = sp.NotAfter.UTC()
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%w: pin %d: %w", ErrBadSnapshot, i, err)
		}
		s.pins[p.Key] = p
	}
	for i := range hdr.Keys {
		var w snapTicketKey
		if err := dec.Decode(&w); err != nil {
			return nil, fmt.Errorf("%w: ticket key %d: %w", ErrBadSnapshot, i, err)
		}
		if len(w.Key) != 32 || w.ID == 0 {
			return nil, fmt.Errorf("%w: ticket key %d: invalid", ErrBadSnapshot, i)
		}
		k := TicketKeyData{ID: w.ID, Created: w.Created.UTC()}
		copy(k.Key[:], w.Key)
		s.tickets = append(s.tickets, k)
	}
	if hdr.Audit > MaxAuditKeys {
		return nil, fmt.Errorf("%w: %d audit keys, at most %d", ErrBadSnapshot, hdr.Audit, MaxAuditKeys)
	}
	for i := range hdr.Audit {
		k, err := readAuditKey(dec, i == hdr.Audit-1)
		if err != nil {
			return nil, fmt.Errorf("%w: audit key %d: %w", ErrBadSnapshot, i, err)
		}
		for _, old := range s.audit {
			if old.ID == k.ID {
				return nil, fmt.Errorf("%w: audit key %d: duplicate id", ErrBadSnapshot, i)
			}
		}
		s.audit = append(s.audit, k)
	}
	for i := range hdr.Seen {
		var a snapApplied
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("%w: applied key %d: %w", ErrBadSnapshot, i, err)
		}
		if a.Key == "" || len(a.Key) > MaxKeyLen {
			return nil, fmt.Errorf("%w: applied key %d: invalid", ErrBadSnapshot, i)
		}
		if _, dup := s.applied[a.Key]; dup {
			return nil, fmt.Errorf("%w: applied key %d: duplicate", ErrBadSnapshot, i)
		}
		s.applied[a.Key] = appliedKey{Index: a.Index, Time: a.Time.UTC()}
		s.order = append(s.order, a.Key)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the last entry", ErrBadSnapshot)
	}
	return s, nil
}

// readAuditKey reads one audit key line; only the last (current) key has
// no retirement time.
func readAuditKey(dec *json.Decoder, last bool) (AuditKeyData, error) {
	var w snapAuditKey
	if err := dec.Decode(&w); err != nil {
		return AuditKeyData{}, err
	}
	if len(w.Key) != 32 || w.RetentionS < 0 || w.RetentionS > int64(MaxAuditKeyRetention/time.Second) || (w.Retired == nil) != last {
		return AuditKeyData{}, errors.New("invalid")
	}
	k := AuditKeyData{ID: w.ID, Retention: time.Duration(w.RetentionS) * time.Second, Created: w.Created.UTC()}
	copy(k.Key[:], w.Key)
	if w.Retired != nil {
		k.Retired = w.Retired.UTC()
	}
	if err := checkAuditKey(&k); err != nil {
		return AuditKeyData{}, err
	}
	return k, nil
}

// Hash returns a hash of the state: the SHA-256 of its snapshot, in hex.
// Nodes that applied the same log report the same hash.
func (s *State) Hash() string {
	h := sha256.New()
	if err := s.WriteSnapshot(h); err != nil {
		return "" // a hash.Hash never fails a write
	}
	return hex.EncodeToString(h.Sum(nil))
}
