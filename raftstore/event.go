package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// SchemaVersion is the version of the event schema this build writes and
// understands. An entry of another version stops the node (see
// UnknownVersionError): skipping it would leave this node's state behind
// every other node's, so that two nodes would make different decisions.
const SchemaVersion = 1

// EventType names an event in the schema (docs/events.md).
type EventType string

// The event types of schema version 1.
const (
	TypeBanAdded        EventType = "ban.added"
	TypeBanLifted       EventType = "ban.lifted"
	TypeRuleAdded       EventType = "acl.rule_added"
	TypeRuleRemoved     EventType = "acl.rule_removed"
	TypeTrustPinned     EventType = "trust.pinned"
	TypeTrustChanged    EventType = "trust.changed"
	TypeTrustRevoked    EventType = "trust.revoked"
	TypeTicketKeyAdded  EventType = "tls.ticket_key_added"
	TypeAuditKeyRotated EventType = "audit.key_rotated"
)

// Secret reports whether events of type t carry a secret (a key): they
// stay inside the cluster (the Raft log, snapshots, the cluster port) and
// are never published on the event plane.
func (t EventType) Secret() bool {
	return t == TypeTicketKeyAdded || t == TypeAuditKeyRotated
}

// Event is one entry of the replicated log: a typed, versioned change to
// the state, stamped by the leader that committed it. Exactly one of the
// payload fields is set, the one Type names.
type Event struct {
	Version int       // SchemaVersion
	Type    EventType // which payload is set
	Time    time.Time // stamped by the leader, UTC; the fold never reads a clock
	Node    string    // the node that proposed the command (informational)
	Key     string    // the command's idempotency key: a retry with the same key applies once

	Ban       *BanData
	Rule      *RuleData
	Trust     *TrustData
	TicketKey *TicketKeyData
	AuditKey  *AuditKeyData
}

// BanData is the payload of ban.added and ban.lifted.
type BanData struct {
	Prefix netip.Prefix
	Until  time.Time // ban.added: when it ends; zero: until lifted
	Reason string    // ban.added: a short token
	Source string    // ban.added: "auto" or "operator"
}

// RuleList names the access list a rule belongs to.
type RuleList string

// The two access lists.
const (
	ListAllow RuleList = "allow"
	ListDeny  RuleList = "deny"
)

// RuleData is the payload of acl.rule_added and acl.rule_removed.
type RuleData struct {
	List   RuleList
	Prefix netip.Prefix
}

// TrustData is the payload of trust.pinned, trust.changed and
// trust.revoked: the pin's key and, except for trust.revoked, the identity
// now in force for it: the certificate's fingerprint, its public key's, or
// both (an operator who approves a rotation may know only one). A zero
// fingerprint is absent; it never matches (tofu.Compare).
type TrustData struct {
	Kind     tofu.PinKind // client claim or upstream server
	Subject  string       // the pin's scope: "host/path/" or "host:port"
	Cert     tofu.Fingerprint
	SPKI     tofu.Fingerprint
	NotAfter time.Time // the certificate's expiry (informational)
}

// TicketKeyData is the payload of tls.ticket_key_added: a TLS session
// ticket key every node uses, so a session resumes on any node.
type TicketKeyData struct {
	ID  uint32
	Key [32]byte
	// Created is the time of the event that added the key, set by the
	// fold (it is not part of the event's data).
	Created time.Time
}

// AuditKeyData is the payload of audit.key_rotated: the key every node
// hashes client addresses with (HMAC-SHA256) from this event on, named ID
// in the hashes it makes. Retention is how long the key is kept once the
// next key has replaced it (whole seconds); then the fold forgets it.
type AuditKeyData struct {
	ID        string
	Key       [32]byte
	Retention time.Duration
	// Created is the time of the event that added the key and Retired
	// that of the event that added the next one (unset for the current,
	// newest key), set by the fold (they are not part of the event's data).
	Created, Retired time.Time
}

// UnknownVersionError is returned when an entry carries a schema version
// this build does not understand. It stops the node: see SchemaVersion.
type UnknownVersionError struct {
	Version int
	Index   uint64
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("log entry %d has event schema version %d; this build understands version %d only: upgrade this node before it rejoins",
		e.Index, e.Version, SchemaVersion)
}

// ErrBadEntry is wrapped by the errors for an entry that does not decode
// as an event of a known type. Like an unknown version, it stops the node.
var ErrBadEntry = errors.New("bad log entry")

// wire forms: the JSON written to the log and to snapshots. The field
// names are the schema's; docs/events.md documents each.
type wireEvent struct {
	V    int             `json:"v"`
	Type EventType       `json:"type"`
	Time time.Time       `json:"time"`
	Node string          `json:"node,omitempty"`
	Key  string          `json:"key,omitempty"`
	Data json.RawMessage `json:"data"`
}

type wireBan struct {
	Prefix netip.Prefix `json:"prefix"`
	Until  *time.Time   `json:"until,omitempty"`
	Reason string       `json:"reason,omitempty"`
	Source string       `json:"source,omitempty"`
}

type wireRule struct {
	List   RuleList     `json:"list"`
	Prefix netip.Prefix `json:"prefix"`
}

type wireTrust struct {
	Kind     string            `json:"kind"`
	Subject  string            `json:"subject"`
	Cert     *tofu.Fingerprint `json:"cert,omitempty"`
	SPKI     *tofu.Fingerprint `json:"spki,omitempty"`
	NotAfter *time.Time        `json:"not_after,omitempty"`
}

type wireTicketKey struct {
	ID  uint32 `json:"id"`
	Key []byte `json:"key"`
}

type wireAuditKey struct {
	ID         string `json:"id"`
	Key        []byte `json:"key"`
	RetentionS int64  `json:"retention_s"`
}

// TrustKindName spells a pin kind as events, snapshots and the admin API
// do: "claim" for a client claim, "upstream" for an upstream server ("" for
// an invalid kind).
func TrustKindName(k tofu.PinKind) string {
	switch k {
	case tofu.PinClient:
		return "claim"
	case tofu.PinUpstream:
		return "upstream"
	}
	return ""
}

// ParseTrustKind parses a pin kind spelt by TrustKindName.
func ParseTrustKind(s string) (tofu.PinKind, error) {
	switch s {
	case "claim":
		return tofu.PinClient, nil
	case "upstream":
		return tofu.PinUpstream, nil
	}
	return 0, fmt.Errorf("kind: %q is neither claim nor upstream", s)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// MarshalEvent encodes e as one line of JSON, the form stored in the log.
func MarshalEvent(e Event) ([]byte, error) {
	var data any
	switch e.Type {
	case TypeBanAdded, TypeBanLifted:
		if e.Ban == nil {
			return nil, fmt.Errorf("marshal %s: no ban payload", e.Type)
		}
		data = wireBan{Prefix: e.Ban.Prefix, Until: timePtr(e.Ban.Until), Reason: e.Ban.Reason, Source: e.Ban.Source}
	case TypeRuleAdded, TypeRuleRemoved:
		if e.Rule == nil {
			return nil, fmt.Errorf("marshal %s: no rule payload", e.Type)
		}
		data = wireRule{List: e.Rule.List, Prefix: e.Rule.Prefix}
	case TypeTrustPinned, TypeTrustChanged, TypeTrustRevoked:
		if e.Trust == nil {
			return nil, fmt.Errorf("marshal %s: no trust payload", e.Type)
		}
		w := wireTrust{Kind: TrustKindName(e.Trust.Kind), Subject: e.Trust.Subject, NotAfter: timePtr(e.Trust.NotAfter)}
		if !e.Trust.Cert.IsZero() {
			w.Cert = &e.Trust.Cert
		}
		if !e.Trust.SPKI.IsZero() {
			w.SPKI = &e.Trust.SPKI
		}
		data = w
	case TypeTicketKeyAdded:
		if e.TicketKey == nil {
			return nil, fmt.Errorf("marshal %s: no ticket key payload", e.Type)
		}
		data = wireTicketKey{ID: e.TicketKey.ID, Key: e.TicketKey.Key[:]}
	case TypeAuditKeyRotated:
		if e.AuditKey == nil {
			return nil, fmt.Errorf("marshal %s: no audit key payload", e.Type)
		}
		data = wireAuditKey{ID: e.AuditKey.ID, Key: e.AuditKey.Key[:], RetentionS: int64(e.AuditKey.Retention / time.Second)}
	default:
		return nil, fmt.Errorf("marshal: unknown event type %q", e.Type)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", e.Type, err)
	}
	v := e.Version
	if v == 0 {
		v = SchemaVersion
	}
	return json.Marshal(wireEvent{V: v, Type: e.Type, Time: e.Time.UTC(), Node: e.Node, Key: e.Key, Data: raw})
}

// UnmarshalEvent decodes an entry written by MarshalEvent. Unknown fields
// are refused, as is any version but SchemaVersion (the error is then an
// *UnknownVersionError with Index 0: the caller knows the index).
func UnmarshalEvent(b []byte) (Event, error) {
	var probe struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEntry, err)
	}
	if probe.V != SchemaVersion {
		return Event{}, &UnknownVersionError{Version: probe.V}
	}
	var w wireEvent
	if err := strictDecode(b, &w); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEntry, err)
	}
	e := Event{Version: w.V, Type: w.Type, Time: w.Time.UTC(), Node: w.Node, Key: w.Key}
	if err := e.decodeData(w.Data); err != nil {
		return Event{}, fmt.Errorf("%w: %s: %w", ErrBadEntry, w.Type, err)
	}
	return e, nil
}

func (e *Event) decodeData(raw json.RawMessage) error {
	switch e.Type {
	case TypeBanAdded, TypeBanLifted:
		var w wireBan
		if err := strictDecode(raw, &w); err != nil {
			return err
		}
		e.Ban = &BanData{Prefix: w.Prefix, Reason: w.Reason, Source: w.Source}
		if w.Until != nil {
			e.Ban.Until = w.Until.UTC()
		}
	case TypeRuleAdded, TypeRuleRemoved:
		var w wireRule
		if err := strictDecode(raw, &w); err != nil {
			return err
		}
		e.Rule = &RuleData{List: w.List, Prefix: w.Prefix}
	case TypeTrustPinned, TypeTrustChanged, TypeTrustRevoked:
		var w wireTrust
		if err := strictDecode(raw, &w); err != nil {
			return err
		}
		kind, err := ParseTrustKind(w.Kind)
		if err != nil {
			return err
		}
		e.Trust = &TrustData{Kind: kind, Subject: w.Subject}
		if w.Cert != nil {
			e.Trust.Cert = *w.Cert
		}
		if w.SPKI != nil {
			e.Trust.SPKI = *w.SPKI
		}
		if w.NotAfter != nil {
			e.Trust.NotAfter = w.NotAfter.UTC()
		}
	case TypeTicketKeyAdded:
		var w wireTicketKey
		if err := strictDecode(raw, &w); err != nil {
			return err
		}
		if len(w.Key) != 32 {
			return fmt.Errorf("key: %d bytes, want 32", len(w.Key))
		}
		e.TicketKey = &TicketKeyData{ID: w.ID}
		copy(e.TicketKey.Key[:], w.Key)
	case TypeAuditKeyRotated:
		var w wireAuditKey
		if err := strictDecode(raw, &w); err != nil {
			return err
		}
		if len(w.Key) != 32 {
			return fmt.Errorf("key: %d bytes, want 32", len(w.Key))
		}
		if w.RetentionS < 0 || w.RetentionS > int64(MaxAuditKeyRetention/time.Second) {
			return fmt.Errorf("retention_s: %d out of range", w.RetentionS)
		}
		e.AuditKey = &AuditKeyData{ID: w.ID, Retention: time.Duration(w.RetentionS) * time.Second}
		copy(e.AuditKey.Key[:], w.Key)
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	return nil
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
