package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
	"github.com/nats-io/nats.go"
)

// State events go to NATS in the binary content mode of the CloudEvents
// 1.0 NATS protocol binding: the attributes in `ce-` headers, the data
// (JSON) as the body. docs/events.md documents every subject and type.
const (
	// CESpecVersion is the CloudEvents version of every message.
	CESpecVersion = "1.0"
	// CETypePrefix prefixes the CloudEvents type of every state event: the
	// reverse-DNS name of the project (github.com/chimalli).
	CETypePrefix = "io.github.chimalli."
	// TypeEventsGap is the type of the marker published in place of
	// committed events the log no longer holds (see StatePublisher).
	TypeEventsGap raftstore.EventType = "events.gap"
)

// The NATS and CloudEvents header names of a state event message.
const (
	HeaderMsgID         = "Nats-Msg-Id" // JetStream de-duplication: "<cluster>-<index>"
	HeaderSpecVersion   = "ce-specversion"
	HeaderID            = "ce-id"
	HeaderSource        = "ce-source"
	HeaderType          = "ce-type"
	HeaderTime          = "ce-time"
	HeaderContentType   = "ce-datacontenttype"
	HeaderRaftIndex     = "ce-raftindex"     // extension: the entry's Raft index (String: decimal digits)
	HeaderSchemaVersion = "ce-schemaversion" // extension: raftstore.SchemaVersion (Integer)
)

// ErrBadCluster is wrapped by the error for a cluster name that cannot
// be a NATS subject token.
var ErrBadCluster = errors.New("bad cluster name")

var clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateCluster reports whether name can name a cluster in subjects,
// message ids and CloudEvents sources: 1 to 64 of [A-Za-z0-9_-].
func ValidateCluster(name string) error {
	if !clusterName.MatchString(name) {
		return fmt.Errorf("%w: %q is not 1 to 64 of [A-Za-z0-9_-]", ErrBadCluster, name)
	}
	return nil
}

// StateSubject returns the NATS subject of a state event of type t in
// cluster: "chimalli.<cluster>.<type>", for example
// chimalli.c1.ban.added.
func StateSubject(cluster string, t raftstore.EventType) string {
	return "chimalli." + cluster + "." + string(t)
}

// StateSubjects returns the subjects of every state event a cluster
// publishes (and the gap marker), each spelled out: CHIMALLI_EVENTS takes
// these and nothing else (the publisher chains each message to the
// stream's last sequence), so observations such as trust.conflict go to
// another stream.
func StateSubjects(cluster string) []string {
	out := []string{StateSubject(cluster, TypeEventsGap)}
	for _, t := range publishedTypes {
		out = append(out, StateSubject(cluster, t))
	}
	return out
}

// StateMsgID returns the Nats-Msg-Id and CloudEvents id of the event at
// Raft index in cluster: "<cluster>-<index>".
func StateMsgID(cluster string, index uint64) string {
	return cluster + "-" + strconv.FormatUint(index, 10)
}

// publishedTypes are the types of the state events that are published.
var publishedTypes = [...]raftstore.EventType{raftstore.TypeBanAdded, raftstore.TypeBanLifted, raftstore.TypeRuleAdded,
	raftstore.TypeRuleRemoved, raftstore.TypeTrustPinned, raftstore.TypeTrustChanged, raftstore.TypeTrustRevoked}

// Published reports whether events of type t are published: the seven
// of publishedTypes, never a secret (raftstore.EventType.Secret: ticket
// and audit keys) nor a type this list does not know yet.
func Published(t raftstore.EventType) bool {
	return slices.Contains(publishedTypes[:], t)
}

// The data of the published types. Prefixes never appear: a prefix is
// its network address's keyed hash (IPHasher), its length and family, so
// a /32 hashes as the audit records name that client.
type (
	pubBan struct {
		PrefixHash string     `json:"prefix_hash"`
		PrefixBits int        `json:"prefix_bits"`
		Family     string     `json:"family"`
		Until      *time.Time `json:"until,omitempty"`
		Reason     string     `json:"reason,omitempty"`
		Source     string     `json:"source,omitempty"`
		Node       string     `json:"node,omitempty"`
	}
	pubRule struct {
		List       raftstore.RuleList `json:"list"`
		PrefixHash string             `json:"prefix_hash"`
		PrefixBits int                `json:"prefix_bits"`
		Family     string             `json:"family"`
		Node       string             `json:"node,omitempty"`
	}
	pubTrust struct {
		Kind     string            `json:"kind"`
		Subject  string            `json:"subject"`
		Cert     *tofu.Fingerprint `json:"cert,omitempty"`
		SPKI     *tofu.Fingerprint `json:"spki,omitempty"`
		NotAfter *time.Time        `json:"not_after,omitempty"`
		Node     string            `json:"node,omitempty"`
	}
	pubGap struct {
		From   uint64 `json:"from"`
		To     uint64 `json:"to"`
		Reason string `json:"reason"`
	}
)

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// StateMessage returns the NATS message for the committed event e at
// Raft index in cluster, or nil for a type that is not published
// (Published). h hashes prefixes; it must not be nil.
func StateMessage(cluster string, index uint64, e raftstore.Event, h raftstore.AddrHasher) (*nats.Msg, error) {
	if !Published(e.Type) {
		return nil, nil
	}
	var data any
	switch e.Type {
	case raftstore.TypeBanAdded, raftstore.TypeBanLifted:
		if e.Ban == nil || !e.Ban.Prefix.IsValid() {
			return nil, fmt.Errorf("state message %d: %s without a prefix", index, e.Type)
		}
		p := e.Ban.Prefix.Masked()
		data = pubBan{PrefixHash: h.HashAddr(p.Addr()), PrefixBits: p.Bits(), Family: family(p),
			Until: optTime(e.Ban.Until), Reason: e.Ban.Reason, Source: e.Ban.Source, Node: e.Node}
	case raftstore.TypeRuleAdded, raftstore.TypeRuleRemoved:
		if e.Rule == nil || !e.Rule.Prefix.IsValid() {
			return nil, fmt.Errorf("state message %d: %s without a prefix", index, e.Type)
		}
		p := e.Rule.Prefix.Masked()
		data = pubRule{List: e.Rule.List, PrefixHash: h.HashAddr(p.Addr()), PrefixBits: p.Bits(), Family: family(p), Node: e.Node}
	default: // the trust types
		if e.Trust == nil {
			return nil, fmt.Errorf("state message %d: %s without a payload", index, e.Type)
		}
		t := pubTrust{Kind: raftstore.TrustKindName(e.Trust.Kind), Subject: e.Trust.Subject, NotAfter: optTime(e.Trust.NotAfter), Node: e.Node}
		if !e.Trust.Cert.IsZero() {
			t.Cert = &e.Trust.Cert
		}
		if !e.Trust.SPKI.IsZero() {
			t.SPKI = &e.Trust.SPKI
		}
		data = t
	}
	v := e.Version
	if v == 0 {
		v = raftstore.SchemaVersion
	}
	return cloudEvent(cluster, index, index, e.Type, e.Time, v, data)
}

// GapMessage returns the marker published in place of the committed
// entries from..to that the log no longer held when they were due
// (compacted into a snapshot). Its id is "<cluster>-gap-<from>-<to>"; its
// Raft index is to, so a publisher resuming after it starts at to+1.
func GapMessage(cluster string, from, to uint64, now time.Time) (*nats.Msg, error) {
	m, err := cloudEvent(cluster, from, to, TypeEventsGap, now, raftstore.SchemaVersion, pubGap{From: from, To: to, Reason: "compacted"})
	if err != nil {
		return nil, err
	}
	id := cluster + "-gap-" + strconv.FormatUint(from, 10) + "-" + strconv.FormatUint(to, 10)
	m.Header.Set(HeaderMsgID, id)
	m.Header.Set(HeaderID, id)
	return m, nil
}

func cloudEvent(cluster string, from, index uint64, t raftstore.EventType, at time.Time, version int, data any) (*nats.Msg, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("state message %d: %w", from, err)
	}
	m := newCloudEvent(StateSubject(cluster, t), StateMsgID(cluster, index), "/chimalli/"+cluster, string(t), at, body)
	m.Header.Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	m.Header.Set(HeaderSchemaVersion, strconv.Itoa(version))
	return m, nil
}

// newCloudEvent returns a message on subject with body as its data and
// the attributes every message of ours carries: id is both its
// Nats-Msg-Id and its ce-id, typ its type without CETypePrefix.
func newCloudEvent(subject, id, source, typ string, at time.Time, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(HeaderMsgID, id)
	m.Header.Set(HeaderSpecVersion, CESpecVersion)
	m.Header.Set(HeaderID, id)
	m.Header.Set(HeaderSource, ceValue(source))
	m.Header.Set(HeaderType, CETypePrefix+typ)
	m.Header.Set(HeaderTime, at.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderContentType, "application/json")
	return m
}

// ceValue percent-encodes a header value as the binding asks (space,
// '"', '%' and anything outside printable ASCII). Our values are tokens,
// so this changes nothing today; it keeps a future attribute conformant.
func ceValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// StateMsgIndex returns the Raft index a state event message carries
// (ce-raftindex): for a gap marker, the last index it stands for.
func StateMsgIndex(h nats.Header) (uint64, error) {
	i, err := strconv.ParseUint(headerFold(h, HeaderRaftIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", HeaderRaftIndex, err)
	}
	return i, nil
}

// headerFold looks name up case-insensitively, as the binding reads
// header names (nats.Header.Get is case-sensitive).
func headerFold(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
