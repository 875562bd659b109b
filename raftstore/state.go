package raftstore

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// Bounds of the state that are part of the fold (every node applies the
// same ones, so they are constants of the schema, not configuration).
const (
	// MaxTicketKeys is how many TLS session-ticket keys the state keeps,
	// newest last: the newest encrypts, all decrypt.
	MaxTicketKeys = 8
	// IdempotencyWindow is how long, in event time, a command's key is
	// remembered: a retry within it applies once.
	IdempotencyWindow = time.Hour
	// MaxIdempotencyKeys bounds the keys remembered at once; the oldest
	// are forgotten first.
	MaxIdempotencyKeys = 1 << 17
	// MaxKeyLen bounds an idempotency key.
	MaxKeyLen = 64
)

// Ban sources: who asked for a ban.
const (
	SourceAuto     = "auto"     // the auto-ban policy, on rate-limit abuse
	SourceOperator = "operator" // an operator, through the admin API
)

// State is the cluster's enforcement state: bans, access rules, TOFU pins,
// session-ticket keys and the keys that hash client addresses, as a pure, deterministic fold of the events in
// the replicated log. It never reads a clock: every time comes from an
// event. Times are made non-decreasing (an event stamped before the
// previous one counts as stamped at the previous one's time), so a leader
// change to a node whose clock lags cannot move the state back in time.
//
// State is not safe for concurrent use; its owner (the Raft FSM)
// serialises Apply, Snapshot and Restore and publishes views.
type State struct {
	index   uint64    // the last applied entry's index
	last    time.Time // the latest (clamped) event time applied
	bans    *BanState
	rules   map[Rule]struct{}
	pins    map[tofu.PinKey]tofu.Pin
	tickets []TicketKeyData // newest last
	audit   []AuditKeyData  // newest (current) last
	// auditGen counts changes to audit (not part of the state).
	auditGen uint64
	applied  map[string]appliedKey
	order    []string // applied keys, oldest first (a FIFO; order[head:] is live)
	head     int
}

type appliedKey struct {
	Index uint64
	Time  time.Time
}

// Rule is an access rule replicated through the log. It adds to the
// node-local access lists of the configuration file.
type Rule struct {
	List   RuleList
	Prefix netip.Prefix
}

// Result says what applying one event did.
type Result struct {
	Index     uint64
	Type      EventType
	Changed   bool   // false: the event was a no-op (already so, or nothing to remove)
	Duplicate uint64 // non-zero: the command's key was applied before, at this index; nothing changed
	Pin       tofu.Pin
	Err       error // the event was refused by the fold (it changed nothing)
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		bans:    NewBanState(),
		rules:   map[Rule]struct{}{},
		pins:    map[tofu.PinKey]tofu.Pin{},
		applied: map[string]appliedKey{},
	}
}

// Index returns the index of the last applied entry.
func (s *State) Index() uint64 { return s.index }

// LastTime returns the latest event time applied.
func (s *State) LastTime() time.Time { return s.last }

// Bans returns the ban state. The caller must not modify it.
func (s *State) Bans() *BanState { return s.bans }

// Apply folds e, the entry at index, into the state. An event the fold
// refuses changes nothing but the applied index, and says why in
// Result.Err: every node refuses it alike.
func (s *State) Apply(index uint64, e Event) Result {
	s.index = index
	t := e.Time.UTC()
	if t.Before(s.last) {
		t = s.last
	}
	s.last = t
	res := Result{Index: index, Type: e.Type}
	s.expireKeys(t)
	s.expireAuditKeys(t)
	if e.Key != "" {
		if prev, ok := s.applied[e.Key]; ok {
			res.Duplicate = prev.Index
			if e.Trust != nil {
				res.Pin = s.pins[tofu.PinKey{Kind: e.Trust.Kind, Scope: e.Trust.Subject}]
			}
			return res
		}
	}
	res.Changed, res.Pin, res.Err = s.apply(t, e)
	if res.Err != nil {
		res.Err = fmt.Errorf("%s at %d: %w", e.Type, index, res.Err)
		return res
	}
	if e.Key != "" {
		s.rememberKey(e.Key, index, t)
	}
	return res
}

func (s *State) apply(t time.Time, e Event) (changed bool, pin tofu.Pin, err error) {
	switch e.Type {
	case TypeBanAdded, TypeBanLifted:
		return s.applyBan(t, e)
	case TypeRuleAdded, TypeRuleRemoved:
		return s.applyRule(e)
	case TypeTrustPinned, TypeTrustChanged, TypeTrustRevoked:
		return s.applyTrust(t, e)
	case TypeTicketKeyAdded:
		return s.applyTicketKey(t, e)
	case TypeAuditKeyRotated:
		return s.applyAuditKey(t, e)
	}
	return false, pin, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, e.Type)
}

func (s *State) applyBan(t time.Time, e Event) (bool, tofu.Pin, error) {
	if e.Ban == nil {
		return false, tofu.Pin{}, fmt.Errorf("%w: no ban payload", ErrInvalidEvent)
	}
	be := BanEvent{Kind: BanAdded, Time: t, Prefix: e.Ban.Prefix, Until: e.Ban.Until, Reason: e.Ban.Reason, Source: e.Ban.Source}
	if e.Type == TypeBanLifted {
		be = BanEvent{Kind: BanLifted, Time: t, Prefix: e.Ban.Prefix}
	}
	prev, seen := s.bans.Lookup(be.Prefix)
	active := seen && prev.ActiveAt(t)
	switch {
	case be.Kind == BanAdded && be.Source == SourceAuto && active:
		return false, tofu.Pin{}, be.Validate() // auto-bans de-duplicate: one ban per flood
	case be.Kind == BanLifted && !active:
		return false, tofu.Pin{}, be.Validate()
	}
	if err := s.bans.Apply(be); err != nil {
		return false, tofu.Pin{}, err
	}
	return true, tofu.Pin{}, nil
}

func (s *State) applyRule(e Event) (bool, tofu.Pin, error) {
	if e.Rule == nil {
		return false, tofu.Pin{}, fmt.Errorf("%w: no rule payload", ErrInvalidEvent)
	}
	r, err := NormalizeRule(e.Rule.List, e.Rule.Prefix)
	if err != nil {
		return false, tofu.Pin{}, err
	}
	_, had := s.rules[r]
	if e.Type == TypeRuleAdded {
		s.rules[r] = struct{}{}
		return !had, tofu.Pin{}, nil
	}
	delete(s.rules, r)
	return had, tofu.Pin{}, nil
}

// NormalizeRule checks a rule and masks its prefix as the state stores it.
func NormalizeRule(list RuleList, p netip.Prefix) (Rule, error) {
	if list != ListAllow && list != ListDeny {
		return Rule{}, fmt.Errorf("%w: list %q is neither allow nor deny", ErrInvalidEvent, list)
	}
	n := normalizePrefix(p)
	if !n.IsValid() {
		return Rule{}, fmt.Errorf("%w: prefix %q", ErrInvalidEvent, p)
	}
	return Rule{List: list, Prefix: n}, nil
}

func (s *State) applyTrust(t time.Time, e Event) (bool, tofu.Pin, error) {
	d := e.Trust
	if d == nil {
		return false, tofu.Pin{}, fmt.Errorf("%w: no trust payload", ErrInvalidEvent)
	}
	key := tofu.PinKey{Kind: d.Kind, Scope: d.Subject}
	if err := key.Validate(); err != nil {
		return false, tofu.Pin{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	prev, had := s.pins[key]
	if e.Type == TypeTrustRevoked {
		delete(s.pins, key)
		return had, tofu.Pin{}, nil
	}
	id, err := trustIdentity(d.Cert, d.SPKI)
	if err != nil {
		return false, prev, err
	}
	p := tofu.Pin{Key: key, Identity: id, NotAfter: d.NotAfter.UTC(), Created: t}
	if err := p.Validate(); err != nil {
		return false, prev, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if e.Type == TypeTrustPinned && had {
		return false, prev, nil // first use already taken: the earlier entry won
	}
	if had && prev.Identity == p.Identity && prev.NotAfter.Equal(p.NotAfter) {
		return false, prev, nil
	}
	s.pins[key] = p
	return true, p, nil
}

// trustIdentity makes the identity of a pin from its fingerprints: the
// certificate's, its public key's, or both. A zero fingerprint is absent,
// and so is one whose hash is all zeros (it is the same identity: a zero
// half never matches a certificate). A present fingerprint must be of its
// kind, and at least one half must be there.
func trustIdentity(cert, spki tofu.Fingerprint) (tofu.Identity, error) {
	if (!cert.IsZero() && cert.Kind != tofu.KindCert) || (!spki.IsZero() && spki.Kind != tofu.KindSPKI) {
		return tofu.Identity{}, fmt.Errorf("%w: trust: a fingerprint of the wrong kind", ErrInvalidEvent)
	}
	id := tofu.Identity{Cert: cert.Sum, SPKI: spki.Sum}
	if id.IsZero() {
		return tofu.Identity{}, fmt.Errorf("%w: trust needs the cert or the spki fingerprint", ErrInvalidEvent)
	}
	return id, nil
}

func (s *State) applyTicketKey(t time.Time, e Event) (bool, tofu.Pin, error) {
	if e.TicketKey == nil || e.TicketKey.ID == 0 {
		return false, tofu.Pin{}, fmt.Errorf("%w: ticket key without id", ErrInvalidEvent)
	}
	for _, k := range s.tickets {
		if k.ID == e.TicketKey.ID {
			return false, tofu.Pin{}, nil
		}
	}
	k := *e.TicketKey
	k.Created = t
	s.tickets = append(s.tickets, k)
	if n := len(s.tickets); n > MaxTicketKeys {
		s.tickets = slices.Clone(s.tickets[n-MaxTicketKeys:])
	}
	return true, tofu.Pin{}, nil
}

func (s *State) rememberKey(key string, index uint64, t time.Time) {
	s.applied[key] = appliedKey{Index: index, Time: t}
	s.order = append(s.order, key)
	for len(s.order)-s.head > MaxIdempotencyKeys {
		s.dropOldestKey()
	}
}

// expireKeys forgets keys older than IdempotencyWindow at t.
func (s *State) expireKeys(t time.Time) {
	cut := t.Add(-IdempotencyWindow)
	for s.head < len(s.order) && !s.applied[s.order[s.head]].Time.After(cut) {
		s.dropOldestKey()
	}
}

func (s *State) dropOldestKey() {
	delete(s.applied, s.order[s.head])
	s.order[s.head] = ""
	s.head++
	if s.head > 1024 && s.head*2 > len(s.order) {
		s.order = slices.Clone(s.order[s.head:])
		s.head = 0
	}
}

// Applied reports the index at which key was applied, if it is still
// remembered.
func (s *State) Applied(key string) (uint64, bool) {
	a, ok := s.applied[key]
	return a.Index, ok
}

// Rules returns the replicated access rules, sorted by list then prefix.
func (s *State) Rules() []Rule {
	out := make([]Rule, 0, len(s.rules))
	for r := range s.rules {
		out = append(out, r)
	}
	slices.SortFunc(out, compareRules)
	return out
}

func compareRules(a, b Rule) int {
	if c := strings.Compare(string(a.List), string(b.List)); c != 0 {
		return c
	}
	return a.Prefix.Compare(b.Prefix)
}

// Pin returns the pin in force for key.
func (s *State) Pin(key tofu.PinKey) (tofu.Pin, bool) {
	p, ok := s.pins[key]
	return p, ok
}

// Pins returns every pin, sorted by kind then scope.
func (s *State) Pins() []tofu.Pin {
	out := make([]tofu.Pin, 0, len(s.pins))
	for _, p := range s.pins {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b tofu.Pin) int {
		if c := cmp.Compare(a.Key.Kind, b.Key.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Scope, b.Key.Scope)
	})
	return out
}

// TicketKeys returns the session-ticket keys, newest last.
func (s *State) TicketKeys() []TicketKeyData { return slices.Clone(s.tickets) }
