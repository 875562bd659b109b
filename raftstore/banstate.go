package raftstore

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"time"
)

// StrikeMemory is how long an ended ban is remembered: a prefix banned
// again within StrikeMemory of its last ban's end counts a further strike
// (and, under the auto-ban policy, earns a longer ban).
const StrikeMemory = 24 * time.Hour

// MaxReasonLen bounds a ban's reason and source tokens.
const MaxReasonLen = 64

// BanEventKind names a ban event.
type BanEventKind uint8

const (
	// BanAdded bans a prefix until a time (or until lifted).
	BanAdded BanEventKind = iota + 1
	// BanLifted ends a prefix's ban now.
	BanLifted
)

// String returns the event's type name in the event schema.
func (k BanEventKind) String() string {
	switch k {
	case BanAdded:
		return "ban.added"
	case BanLifted:
		return "ban.lifted"
	}
	return fmt.Sprintf("ban.kind(%d)", uint8(k))
}

// BanEvent is one change to the ban list. Time is stamped by the writer
// (the leader, in a cluster): the fold never reads a clock, so replaying
// the same events gives the same state on every node.
type BanEvent struct {
	Kind   BanEventKind
	Time   time.Time
	Prefix netip.Prefix
	Until  time.Time // BanAdded: when the ban ends; zero: until lifted
	Reason string    // BanAdded: why, a short token
	Source string    // BanAdded: "auto" or "operator"
}

// ErrInvalidEvent is returned (wrapped) by BanState.Apply for an event that
// cannot be applied; the state is then unchanged.
var ErrInvalidEvent = errors.New("invalid ban event")

// Validate reports what is wrong with e, if anything.
func (e BanEvent) Validate() error {
	var errs []error
	if e.Kind != BanAdded && e.Kind != BanLifted {
		errs = append(errs, fmt.Errorf("kind: unknown %d", e.Kind))
	}
	if e.Time.IsZero() {
		errs = append(errs, errors.New("time: missing"))
	}
	if !normalizePrefix(e.Prefix).IsValid() {
		errs = append(errs, fmt.Errorf("prefix: invalid %q", e.Prefix))
	}
	if e.Kind == BanAdded {
		if !e.Until.IsZero() && !e.Until.After(e.Time) {
			errs = append(errs, errors.New("until: not after the event's time"))
		}
		if err := checkToken("reason", e.Reason); err != nil {
			errs = append(errs, err)
		}
		if err := checkToken("source", e.Source); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidEvent, errors.Join(errs...))
}

func validToken(s string) bool {
	if s == "" || len(s) > MaxReasonLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// BanState is the ban list as a fold of ban events. It is not safe for
// concurrent use: its owner (the local store, or the Raft FSM) serialises
// Apply and takes a View to publish.
type BanState struct {
	bans map[netip.Prefix]Ban // active bans and ended ones still remembered for strikes
	// nextForget is no later than the earliest time a ban in bans becomes
	// forgettable (its end + StrikeMemory); zero when none has an end. It
	// spares Apply a scan of every ban on every event.
	nextForget time.Time

	// The last view View returned, and the same for every ban the state
	// holds, remembered ones included: what a snapshot writes (Frozen).
	// They are local caches, no part of the fold.
	view  banCache
	every banCache
}

// banCache is an immutable BanSet derived from a BanState's bans, kept
// copy-on-write: it notes the prefixes changed since it was last brought
// up to date, so that bringing it up to date costs those changes, not the
// size of the list. Its set is nil until first taken, and again once too
// many changes pile up; the next update then indexes every ban afresh.
type banCache struct {
	set     *BanSet
	touched []netip.Prefix // only while there is a set
}

// maxTouched bounds the changes kept for the next View: past it the
// changes are dropped and the next View indexes every ban afresh. A
// Raft FSM publishes a view per batch (at most a few hundred entries), so
// only a state whose owner stopped taking views gets there.
const maxTouched = 1 << 16

// NewBanState returns an empty state.
func NewBanState() *BanState {
	return &BanState{bans: map[netip.Prefix]Ban{}}
}

// Apply folds e into the state. An invalid event changes nothing and
// returns an error wrapping ErrInvalidEvent. Ended bans are forgotten
// StrikeMemory after their end, measured in event time.
func (s *BanState) Apply(e BanEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	s.forget(e.Time)
	p := normalizePrefix(e.Prefix)
	prev, seen := s.bans[p]
	switch e.Kind {
	case BanAdded:
		b := Ban{Prefix: p, Since: e.Time, Until: e.Until, Reason: e.Reason, Source: e.Source, Strikes: 1}
		if seen {
			b.Strikes = prev.Strikes + 1
		}
		s.bans[p] = b
		s.noteEnd(b.Until)
		s.touch(p)
	case BanLifted:
		if seen && prev.ActiveAt(e.Time) {
			prev.Until = e.Time
			s.bans[p] = prev
			s.noteEnd(prev.Until)
			s.touch(p)
		}
	}
	return nil
}

// touch notes that p's ban changed since the last view and frozen set.
func (s *BanState) touch(p netip.Prefix) {
	s.view.touch(p)
	s.every.touch(p)
}

// touch notes that p's ban changed, while there is a set.
func (c *banCache) touch(p netip.Prefix) {
	if c.set == nil {
		return
	}
	if len(c.touched) >= maxTouched {
		c.set, c.touched = nil, nil
		return
	}
	c.touched = append(c.touched, p)
}

// update brings the set up to date with bans, holding those keep accepts,
// and returns it.
func (c *banCache) update(bans map[netip.Prefix]Ban, keep func(Ban) bool) *BanSet {
	switch {
	case c.set == nil:
		kept := make([]Ban, 0, len(bans))
		for _, b := range bans {
			if keep(b) {
				kept = append(kept, b)
			}
		}
		c.set = newBanSet(kept)
	case len(c.touched) > 0:
		e := c.set.edit()
		for _, p := range c.touched {
			if b, ok := bans[p]; ok && keep(b) {
				e.put(b)
			} else {
				e.del(p)
			}
		}
		c.set = e.done()
	}
	clear(c.touched)
	c.touched = c.touched[:0]
	return c.set
}

// frozen returns an immutable set of every ban the state holds,
// remembered ones included. Like View, its cost follows the changes since
// the last call, not the size of the list.
func (s *BanState) frozen() *BanSet {
	return s.every.update(s.bans, func(Ban) bool { return true })
}

// noteEnd lowers nextForget for a ban ending at until.
func (s *BanState) noteEnd(until time.Time) {
	if until.IsZero() {
		return
	}
	if f := until.Add(StrikeMemory); s.nextForget.IsZero() || f.Before(s.nextForget) {
		s.nextForget = f
	}
}

// forget drops bans that ended StrikeMemory or more before now. It scans
// only when nextForget says one may be due.
func (s *BanState) forget(now time.Time) {
	if s.nextForget.IsZero() || now.Before(s.nextForget) {
		return
	}
	cut := now.Add(-StrikeMemory)
	s.nextForget = time.Time{}
	maps.DeleteFunc(s.bans, func(_ netip.Prefix, b Ban) bool {
		if b.Until.IsZero() {
			return false
		}
		if !b.Until.After(cut) {
			s.touch(b.Prefix)
			return true
		}
		s.noteEnd(b.Until)
		return false
	})
}

// Strikes returns how many bans in a row p has earned so far: 0 when it
// has none that is active or remembered.
func (s *BanState) Strikes(p netip.Prefix) int {
	return s.bans[normalizePrefix(p)].Strikes
}

// Lookup returns p's ban, active or remembered.
func (s *BanState) Lookup(p netip.Prefix) (Ban, bool) {
	b, ok := s.bans[normalizePrefix(p)]
	return b, ok
}

// Len returns how many bans the state holds, remembered ones included.
func (s *BanState) Len() int { return len(s.bans) }

// View returns an immutable view of the bans active at now. The first
// view indexes every ban; each later one is the previous view with the
// bans changed since put in or taken out (those that ended by now are
// taken out), sharing the rest, so its cost follows the changes rather
// than the size of the list. A ban that ends by itself stays in the views
// (where Banned checks its end) until an event changes it or the state
// forgets it.
func (s *BanState) View(now time.Time) *BanSet {
	return s.view.update(s.bans, func(b Ban) bool { return b.ActiveAt(now) })
}

// all returns every ban the state holds, remembered ones included, in no
// order.
func (s *BanState) all() []Ban {
	out := make([]Ban, 0, len(s.bans))
	for _, b := range s.bans {
		out = append(out, b)
	}
	return out
}

// restore puts b back as a snapshot recorded it.
func (s *BanState) restore(b Ban) {
	s.bans[b.Prefix] = b
	s.noteEnd(b.Until)
	s.touch(b.Prefix)
}
