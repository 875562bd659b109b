package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// randomEvent draws an event over a small space of prefixes, subjects and
// keys, so that events collide: re-bans, lifts of what is banned, claims
// on pinned subjects, retried keys.
func randomEvent(r *rand.Rand, at time.Time) Event {
	prefixes := []string{"192.0.2.7/32", "192.0.2.0/24", "2001:db8::/64", "2001:db8:1::/48", "198.51.100.9/32", "::ffff:203.0.113.5/128"}
	p := netip.MustParsePrefix(prefixes[r.IntN(len(prefixes))])
	e := Event{Version: SchemaVersion, Time: at.Add(time.Duration(r.IntN(3)-1) * time.Second), Node: "n1"}
	if r.IntN(3) == 0 {
		e.Key = fmt.Sprintf("k%d", r.IntN(40))
	}
	sub := []string{"example.org/app/", "example.org/admin/", "backend:1965"}[r.IntN(3)]
	kind := tofu.PinClient
	if sub == "backend:1965" {
		kind = tofu.PinUpstream
	}
	var id [32]byte
	id[0] = byte(r.IntN(3))
	switch r.IntN(10) {
	case 0, 1:
		until := time.Time{}
		if r.IntN(2) == 0 {
			until = e.Time.Add(time.Duration(1+r.IntN(120)) * time.Minute)
		}
		src := SourceOperator
		if r.IntN(2) == 0 {
			src = SourceAuto
		}
		e.Type, e.Ban = TypeBanAdded, &BanData{Prefix: p, Until: until, Reason: "rate_limit", Source: src}
	case 2:
		e.Type, e.Ban = TypeBanLifted, &BanData{Prefix: p}
	case 3:
		e.Type, e.Rule = TypeRuleAdded, &RuleData{List: []RuleList{ListAllow, ListDeny}[r.IntN(2)], Prefix: p}
	case 4:
		e.Type, e.Rule = TypeRuleRemoved, &RuleData{List: []RuleList{ListAllow, ListDeny}[r.IntN(2)], Prefix: p}
	case 5, 6:
		e.Type = []EventType{TypeTrustPinned, TypeTrustChanged}[r.IntN(2)]
		e.Trust = &TrustData{Kind: kind, Subject: sub, NotAfter: at.Add(24 * time.Hour)}
		switch r.IntN(4) { // both halves (a certificate seen), or one (an operator's approval)
		case 0:
			e.Trust.Cert = tofu.Fingerprint{Kind: tofu.KindCert, Sum: id}
		case 1:
			e.Trust.SPKI = tofu.Fingerprint{Kind: tofu.KindSPKI, Sum: id}
		default:
			e.Trust.Cert, e.Trust.SPKI = tofu.Fingerprint{Kind: tofu.KindCert, Sum: id}, tofu.Fingerprint{Kind: tofu.KindSPKI, Sum: id}
		}
	case 7:
		e.Type, e.Trust = TypeTrustRevoked, &TrustData{Kind: kind, Subject: sub}
	case 8:
		k := TicketKeyData{ID: uint32(1 + r.IntN(12))}
		k.Key[0] = byte(k.ID)
		e.Type, e.TicketKey = TypeTicketKeyAdded, &k
	case 9: // a few ids (re-adds collide), retentions shorter and longer than the gaps between events
		k := AuditKeyData{ID: fmt.Sprintf("c%d", r.IntN(8)), Retention: []time.Duration{0, 20 * time.Minute, 2 * time.Hour, 72 * time.Hour}[r.IntN(4)]}
		k.Key[0] = byte(r.IntN(256))
		e.Type, e.AuditKey = TypeAuditKeyRotated, &k
	}
	return e
}

func randomLog(seed uint64, n int) []Event {
	r := rand.New(rand.NewPCG(seed, 1))
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	log := make([]Event, n)
	for i := range log {
		at = at.Add(time.Duration(r.IntN(30)) * time.Minute)
		log[i] = randomEvent(r, at)
	}
	return log
}

func snapshotBytes(t *testing.T, s *State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteSnapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStateReplayAndRestoreAreIdentical is the property the cluster rests
// on: replaying the log from the start, or restoring any snapshot taken
// along the way and replaying the rest, gives byte-identical snapshots.
// Every event also goes through the log's wire encoding.
func TestStateReplayAndRestoreAreIdentical(t *testing.T) {
	for seed := range uint64(30) {
		log := randomLog(seed, 300)
		full := NewState()
		snaps := make([][]byte, len(log)+1)
		snaps[0] = snapshotBytes(t, full)
		for i, e := range log {
			raw, err := MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalEvent(raw)
			if err != nil {
				t.Fatalf("seed %d entry %d: %v\n%s", seed, i, err, raw)
			}
			full.Apply(uint64(i+1), back)
			snaps[i+1] = snapshotBytes(t, full)
		}
		want := snaps[len(log)]
		for cut := 0; cut <= len(log); cut += 37 {
			s, err := ReadSnapshot(bytes.NewReader(snaps[cut]))
			if err != nil {
				t.Fatalf("seed %d: restore at %d: %v", seed, cut, err)
			}
			if got := snapshotBytes(t, s); !bytes.Equal(got, snaps[cut]) {
				t.Fatalf("seed %d: snapshot at %d does not round-trip", seed, cut)
			}
			for i := cut; i < len(log); i++ {
				s.Apply(uint64(i+1), log[i])
			}
			if got := snapshotBytes(t, s); !bytes.Equal(got, want) {
				t.Fatalf("seed %d: restore at %d + replay differs from full replay:\n%s\nwant\n%s", seed, cut, got, want)
			}
			if s.Hash() != full.Hash() {
				t.Fatalf("seed %d: hashes differ", seed)
			}
		}
	}
}

func TestStateIdempotencyKeyAppliesOnce(t *testing.T) {
	s := NewState()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ban := func(at time.Time) Event {
		return Event{Type: TypeBanAdded, Time: at, Key: "retry-1",
			Ban: &BanData{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Reason: "operator", Source: SourceOperator}}
	}
	if r := s.Apply(1, ban(at)); !r.Changed || r.Duplicate != 0 || r.Err != nil {
		t.Fatalf("first apply: %+v", r)
	}
	r := s.Apply(2, ban(at.Add(time.Minute)))
	if r.Changed || r.Duplicate != 1 {
		t.Fatalf("retry: %+v, want a duplicate of 1", r)
	}
	if b, _ := s.Bans().Lookup(netip.MustParsePrefix("192.0.2.7/32")); b.Strikes != 1 {
		t.Fatalf("retry applied again: strikes %d", b.Strikes)
	}
	// After the window the key is forgotten: the same key is a new command.
	if r := s.Apply(3, ban(at.Add(IdempotencyWindow+2*time.Minute))); r.Duplicate != 0 || !r.Changed {
		t.Fatalf("after the window: %+v", r)
	}
}

func TestStateFirstPinWins(t *testing.T) {
	s := NewState()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	pin := func(b byte) Event {
		var sum [32]byte
		sum[0] = b
		return Event{Type: TypeTrustPinned, Time: at, Trust: &TrustData{Kind: tofu.PinClient, Subject: "localhost/claim/",
			Cert: tofu.Fingerprint{Kind: tofu.KindCert, Sum: sum}, SPKI: tofu.Fingerprint{Kind: tofu.KindSPKI, Sum: sum}}}
	}
	first := s.Apply(1, pin(1))
	second := s.Apply(2, pin(2))
	if !first.Changed || second.Changed {
		t.Fatalf("first %+v second %+v", first, second)
	}
	if second.Pin.Identity != first.Pin.Identity || first.Pin.Identity.Cert[0] != 1 {
		t.Fatalf("the loser must be told the winner: %+v", second.Pin)
	}
	changed := pin(2)
	changed.Type = TypeTrustChanged
	if r := s.Apply(3, changed); !r.Changed || r.Pin.Identity.Cert[0] != 2 {
		t.Fatalf("trust.changed: %+v", r)
	}
	revoked := Event{Type: TypeTrustRevoked, Time: at, Trust: &TrustData{Kind: tofu.PinClient, Subject: "localhost/claim/"}}
	if r := s.Apply(4, revoked); !r.Changed {
		t.Fatalf("revoke: %+v", r)
	}
	if _, ok := s.Pin(tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/claim/"}); ok {
		t.Fatal("revoked pin still in force")
	}
}

// An operator may approve a pin by one fingerprint only: the pin holds
// that half, the other is absent (never matches), and snapshots carry the
// pin without the absent half and read it back as it was.
func TestStateTrustOneHalf(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cert := tofu.Fingerprint{Kind: tofu.KindCert, Sum: [32]byte{1}}
	spki := tofu.Fingerprint{Kind: tofu.KindSPKI, Sum: [32]byte{2}}
	tests := []struct {
		name       string
		cert, spki tofu.Fingerprint
		match      tofu.Identity // a certificate the pin accepts
		other      tofu.Identity // one it refuses
		absent     string        // the snapshot field left out
	}{
		{"cert only", cert, tofu.Fingerprint{}, tofu.Identity{Cert: [32]byte{1}, SPKI: [32]byte{9}}, tofu.Identity{Cert: [32]byte{9}, SPKI: [32]byte{2}}, `"spki"`},
		{"spki only", tofu.Fingerprint{}, spki, tofu.Identity{Cert: [32]byte{9}, SPKI: [32]byte{2}}, tofu.Identity{Cert: [32]byte{1}, SPKI: [32]byte{9}}, `"cert"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			e := Event{Version: SchemaVersion, Type: TypeTrustChanged, Time: at, Trust: &TrustData{Kind: tofu.PinUpstream, Subject: "backend:1965", Cert: tt.cert, SPKI: tt.spki}}
			raw, err := MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalEvent(raw)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if r := s.Apply(1, back); r.Err != nil || !r.Changed {
				t.Fatalf("apply: %+v", r)
			}
			p, ok := s.Pin(tofu.PinKey{Kind: tofu.PinUpstream, Scope: "backend:1965"})
			if !ok {
				t.Fatal("no pin")
			}
			if tofu.Compare(p, tt.match) != tofu.Match || tofu.Compare(p, tt.other) != tofu.Mismatch {
				t.Fatalf("pin %+v: matches %v, refuses %v: wrong", p, tofu.Compare(p, tt.match), tofu.Compare(p, tt.other))
			}
			snap := snapshotBytes(t, s)
			if bytes.Contains(snap, []byte(tt.absent)) {
				t.Fatalf("the snapshot carries the absent half:\n%s", snap)
			}
			restored, err := ReadSnapshot(bytes.NewReader(snap))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := restored.Pin(p.Key); !got.Equal(p) || !bytes.Equal(snapshotBytes(t, restored), snap) {
				t.Fatalf("restored pin %+v, want %+v", got, p)
			}
		})
	}
	wrong := []struct {
		name       string
		cert, spki tofu.Fingerprint
	}{
		{"neither", tofu.Fingerprint{}, tofu.Fingerprint{}},
		{"spki in the cert's place", spki, tofu.Fingerprint{}},
		{"cert in the spki's place", tofu.Fingerprint{}, cert},
		{"all-zero hash", tofu.Fingerprint{Kind: tofu.KindCert}, tofu.Fingerprint{}},
	}
	for _, tt := range wrong {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			e := Event{Type: TypeTrustChanged, Time: at, Trust: &TrustData{Kind: tofu.PinUpstream, Subject: "backend:1965", Cert: tt.cert, SPKI: tt.spki}}
			if r := s.Apply(1, e); r.Err == nil || r.Changed || len(s.Pins()) != 0 {
				t.Fatalf("got %+v, want a refusal", r)
			}
		})
	}
	for _, line := range []string{
		`{"kind":"upstream","subject":"backend:1965","created":"2026-11-30T12:00:00Z"}`,
		`{"kind":"upstream","subject":"backend:1965","cert":"spki-sha256:0200000000000000000000000000000000000000000000000000000000000000","created":"2026-11-30T12:00:00Z"}`,
	} {
		snap := `{"v":1,"index":1,"time":"2026-11-30T12:00:00Z","bans":0,"rules":0,"pins":1,"ticket_keys":0,"audit_keys":0,"applied":0}` + "\n" + line + "\n"
		if _, err := ReadSnapshot(strings.NewReader(snap)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("snapshot pin %s: %v, want ErrBadSnapshot", line, err)
		}
	}
}

func TestStateTimeNeverGoesBack(t *testing.T) {
	s := NewState()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.Apply(1, Event{Type: TypeRuleAdded, Time: at, Rule: &RuleData{List: ListDeny, Prefix: netip.MustParsePrefix("192.0.2.0/24")}})
	s.Apply(2, Event{Type: TypeRuleAdded, Time: at.Add(-time.Hour), Rule: &RuleData{List: ListDeny, Prefix: netip.MustParsePrefix("192.0.3.0/24")}})
	if !s.LastTime().Equal(at) {
		t.Fatalf("last time %v, want %v", s.LastTime(), at)
	}
}

func TestStateRefusesInvalidEventsAlike(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    Event
	}{
		{"rule list", Event{Type: TypeRuleAdded, Time: at, Rule: &RuleData{List: "maybe", Prefix: netip.MustParsePrefix("192.0.2.0/24")}}},
		{"rule prefix", Event{Type: TypeRuleAdded, Time: at, Rule: &RuleData{List: ListDeny}}},
		{"ban reason", Event{Type: TypeBanAdded, Time: at, Ban: &BanData{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Source: SourceOperator}}},
		{"pin without identity", Event{Type: TypeTrustPinned, Time: at, Trust: &TrustData{Kind: tofu.PinClient, Subject: "a/"}}},
		{"pin without subject", Event{Type: TypeTrustRevoked, Time: at, Trust: &TrustData{Kind: tofu.PinClient}}},
		{"ticket key id 0", Event{Type: TypeTicketKeyAdded, Time: at, TicketKey: &TicketKeyData{}}},
		{"audit key without id", Event{Type: TypeAuditKeyRotated, Time: at, AuditKey: &AuditKeyData{}}},
		{"audit key id not a token", Event{Type: TypeAuditKeyRotated, Time: at, AuditKey: &AuditKeyData{ID: "c1:2"}}},
		{"audit key retention negative", Event{Type: TypeAuditKeyRotated, Time: at, AuditKey: &AuditKeyData{ID: "c1", Retention: -time.Second}}},
		{"audit key without payload", Event{Type: TypeAuditKeyRotated, Time: at}},
		{"no payload", Event{Type: TypeBanLifted, Time: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			before := s.Hash()
			r := s.Apply(1, tt.e)
			if r.Err == nil || r.Changed {
				t.Fatalf("got %+v, want a refusal", r)
			}
			s.index, s.last = 0, time.Time{} // what every applied entry moves
			if s.Hash() != before {
				t.Fatal("a refused event changed the state")
			}
		})
	}
}

func TestUnmarshalEventRefusesUnknownVersionAndFields(t *testing.T) {
	_, err := UnmarshalEvent([]byte(`{"v":2,"type":"ban.added","time":"2026-11-30T12:00:00Z","data":{}}`))
	var uv *UnknownVersionError
	if !errors.As(err, &uv) || uv.Version != 2 {
		t.Fatalf("v2: %v", err)
	}
	for _, in := range []string{
		`{"v":1,"type":"ban.added","time":"2026-11-30T12:00:00Z","data":{"prefix":"192.0.2.1/32","extra":1}}`,
		`{"v":1,"type":"ban.nuked","time":"2026-11-30T12:00:00Z","data":{}}`,
		`{"v":1,"type":"ban.added","time":"2026-11-30T12:00:00Z","data":{"prefix":"192.0.2.1/32"}} {}`,
		`{"v":1,"type":"trust.pinned","time":"2026-11-30T12:00:00Z","data":{"kind":"friend","subject":"a/"}}`,
		`{"v":1,"type":"tls.ticket_key_added","time":"2026-11-30T12:00:00Z","data":{"id":1,"key":"AAAA"}}`,
		`{"v":1,"type":"audit.key_rotated","time":"2026-11-30T12:00:00Z","data":{"id":"c1","key":"AAAA","retention_s":0}}`,
		`{"v":1,"type":"audit.key_rotated","time":"2026-11-30T12:00:00Z","data":{"id":"c1","key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","retention_s":-1}}`,
		`not json`,
	} {
		if _, err := UnmarshalEvent([]byte(in)); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: got %v, want ErrBadEntry", in, err)
		}
	}
}

func FuzzUnmarshalEvent(f *testing.F) {
	for _, e := range randomLog(7, 40) {
		raw, err := MarshalEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEvent(b)
		if err != nil {
			return
		}
		s := NewState()
		s.Apply(1, e) // never panics
		raw, err := MarshalEvent(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		again, err := UnmarshalEvent(raw)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, raw)
		}
		raw2, _ := MarshalEvent(again)
		if !bytes.Equal(raw, raw2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", raw, raw2)
		}
	})
}

func FuzzReadSnapshot(f *testing.F) {
	s := NewState()
	for i, e := range randomLog(3, 60) {
		s.Apply(uint64(i+1), e)
	}
	var b bytes.Buffer
	if err := s.WriteSnapshot(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"v":1,"index":0,"time":"0001-01-01T00:00:00Z","bans":0,"rules":0,"pins":0,"ticket_keys":0,"audit_keys":0,"applied":0}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ReadSnapshot(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := s.WriteSnapshot(&out); err != nil {
			t.Fatal(err)
		}
		again, err := ReadSnapshot(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("a snapshot written from a restored state does not read: %v", err)
		}
		if again.Hash() != s.Hash() {
			t.Fatal("restore is not stable")
		}
	})
}

// The frozen set a snapshot writes holds every ban of the state, with all
// its fields, after any sequence of events (its copy-on-write edits
// included).
func TestFrozenBansEqualTheState(t *testing.T) {
	for seed := range uint64(10) {
		s := NewState()
		for i, e := range randomLog(seed, 400) {
			s.Apply(uint64(i+1), e)
			if i%7 != 0 {
				continue
			}
			got := s.bans.frozen().Bans()
			want := s.bans.all()
			sortBans := func(b []Ban) { slices.SortFunc(b, func(x, y Ban) int { return x.Prefix.Compare(y.Prefix) }) }
			sortBans(got)
			sortBans(want)
			if len(got) != len(want) {
				t.Fatalf("seed %d entry %d: frozen has %d bans, state %d", seed, i, len(got), len(want))
			}
			for j := range got {
				g, w := got[j], want[j]
				if g.Prefix != w.Prefix || !g.Since.Equal(w.Since) || !g.Until.Equal(w.Until) || g.Reason != w.Reason ||
					g.Source != w.Source || g.Strikes != w.Strikes {
					t.Fatalf("seed %d entry %d: frozen %+v, state %+v", seed, i, g, w)
				}
			}
		}
	}
}
