package raftstore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// Op names what a command asks for.
type Op string

// The commands. Each becomes one event when the leader accepts it.
const (
	OpBanAdd       Op = "ban.add"       // an operator bans Prefix for Duration (0: until lifted)
	OpBanAuto      Op = "ban.auto"      // the auto-ban policy bans Prefix; the leader picks the length
	OpBanLift      Op = "ban.lift"      // lift Prefix's ban
	OpRuleAdd      Op = "rule.add"      // add Prefix to List
	OpRuleRemove   Op = "rule.remove"   // remove Prefix from List
	OpTrustClaim   Op = "trust.claim"   // first use of Pin.Key by Pin.Identity
	OpTrustApprove Op = "trust.approve" // an operator approves Pin.Identity for Pin.Key (a rotation)
	OpTrustRevoke  Op = "trust.revoke"  // forget Pin.Key's pin; its next use is a first use
	OpTicketRotate Op = "ticket.rotate" // add a new session-ticket key (the leader makes it)
	// OpAuditKeyRotate adds a new key for hashing client addresses (the
	// leader makes it), kept Duration once the next one replaces it.
	OpAuditKeyRotate Op = "audit.key_rotate"
)

// Command is a request to change the state, as an operator, the gateway or
// a node makes it. The leader validates it against the state it has
// applied, stamps the time and turns it into an Event (Command.Event); the
// event, not the command, is what every node folds.
type Command struct {
	Op        Op            `json:"op"`
	Key       string        `json:"key,omitempty"`  // idempotency key: a retry with the same key applies once
	Node      string        `json:"node,omitempty"` // the node that proposes it
	Prefix    netip.Prefix  `json:"prefix,omitzero"`
	Duration  time.Duration `json:"duration,omitempty"` // ban.add: the ban's length (0: until lifted); audit.key_rotate: the key's retention
	Reason    string        `json:"reason,omitempty"`
	List      RuleList      `json:"list,omitempty"`
	PinKind   tofu.PinKind  `json:"pin_kind,omitempty"`
	Subject   string        `json:"subject,omitempty"`
	Identity  tofu.Identity `json:"identity,omitzero"`
	NotAfter  time.Time     `json:"not_after,omitzero"`
	Permanent bool          `json:"permanent,omitempty"` // ban.add: explicitly until lifted
	Force     bool          `json:"force,omitempty"`     // ban.add, rule.add to deny: allow a very broad prefix (CheckBreadth)
}

// NewKey returns a random idempotency key.
func NewKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a time-based
		// key still tells retries of one command apart from others.
		binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
	}
	return hex.EncodeToString(b[:])
}

// ErrRefused is wrapped by the errors for a command the leader refuses as
// invalid; nothing was committed.
var ErrRefused = errors.New("command refused")

// Event validates c against st, the state the leader has applied, and
// returns the event to commit, stamped now. policy sets the length of an
// auto-ban. An error wraps ErrRefused.
func (c Command) Event(st *State, now time.Time, policy AutoBanPolicy) (Event, error) {
	e := Event{Version: SchemaVersion, Time: now.UTC(), Node: c.Node, Key: c.Key}
	if len(c.Key) > MaxKeyLen {
		return e, fmt.Errorf("%w: key longer than %d bytes", ErrRefused, MaxKeyLen)
	}
	refuse := func(err error) (Event, error) { return e, fmt.Errorf("%w: %s: %w", ErrRefused, c.Op, err) }
	switch c.Op {
	case OpBanAdd, OpBanAuto, OpBanLift:
		p := normalizePrefix(c.Prefix)
		if !p.IsValid() {
			return refuse(fmt.Errorf("prefix: invalid %q", c.Prefix))
		}
		e.Ban = &BanData{Prefix: p}
		switch c.Op {
		case OpBanLift:
			e.Type = TypeBanLifted
		case OpBanAuto:
			e.Type = TypeBanAdded
			e.Ban.Reason, e.Ban.Source = "rate_limit", SourceAuto
			prev, _ := st.bans.Lookup(p)
			e.Ban.Until = e.Time.Add(policy.DurationFor(prev.Strikes))
		default:
			e.Type = TypeBanAdded
			e.Ban.Reason, e.Ban.Source = c.Reason, SourceOperator
			if e.Ban.Reason == "" {
				e.Ban.Reason = "operator"
			}
			bc := BanCommand{Prefix: c.Prefix, Duration: c.Duration, Permanent: c.Permanent, Reason: e.Ban.Reason, Force: c.Force}
			if err := bc.Validate(); err != nil {
				return refuse(err)
			}
			if !c.Permanent {
				e.Ban.Until = e.Time.Add(c.Duration)
			}
		}
		if e.Type == TypeBanAdded {
			be := BanEvent{Kind: BanAdded, Time: e.Time, Prefix: p, Until: e.Ban.Until, Reason: e.Ban.Reason, Source: e.Ban.Source}
			if err := be.Validate(); err != nil {
				return refuse(err)
			}
		}
	case OpRuleAdd, OpRuleRemove:
		r, err := NormalizeRule(c.List, c.Prefix)
		if err != nil {
			return refuse(err)
		}
		if c.Op == OpRuleAdd && r.List == ListDeny && !c.Force {
			if err := CheckBreadth(r.Prefix); err != nil {
				return refuse(fmt.Errorf("prefix: %w", err))
			}
		}
		e.Type = TypeRuleAdded
		if c.Op == OpRuleRemove {
			e.Type = TypeRuleRemoved
		}
		e.Rule = &RuleData{List: r.List, Prefix: r.Prefix}
	case OpTrustClaim, OpTrustApprove, OpTrustRevoke:
		key := tofu.PinKey{Kind: c.PinKind, Scope: c.Subject}
		if err := key.Validate(); err != nil {
			return refuse(err)
		}
		e.Trust = &TrustData{Kind: c.PinKind, Subject: c.Subject}
		if c.Op == OpTrustRevoke {
			e.Type = TypeTrustRevoked
			break
		}
		if c.Identity.IsZero() {
			return refuse(errors.New("identity: missing"))
		}
		cert, spki := pinHalves(c.Identity) // a zero half is absent: an operator may know only one
		if cert != nil {
			e.Trust.Cert = *cert
		}
		if spki != nil {
			e.Trust.SPKI = *spki
		}
		e.Trust.NotAfter = c.NotAfter.UTC()
		e.Type = TypeTrustPinned
		if c.Op == OpTrustApprove {
			e.Type = TypeTrustChanged
		}
	case OpTicketRotate:
		k := TicketKeyData{}
		if _, err := rand.Read(k.Key[:]); err != nil {
			return refuse(err)
		}
		for _, old := range st.tickets {
			k.ID = max(k.ID, old.ID)
		}
		k.ID++
		e.Type, e.TicketKey = TypeTicketKeyAdded, &k
	case OpAuditKeyRotate:
		k := AuditKeyData{Retention: c.Duration.Truncate(time.Second)}
		if _, err := rand.Read(k.Key[:]); err != nil {
			return refuse(err)
		}
		k.ID = AuditKeyID(k.Key)
		if err := checkAuditKey(&k); err != nil {
			return refuse(err)
		}
		e.Type, e.AuditKey = TypeAuditKeyRotated, &k
	default:
		return refuse(fmt.Errorf("unknown op %q", c.Op))
	}
	return e, nil
}
