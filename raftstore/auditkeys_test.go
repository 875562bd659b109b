package raftstore

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// rotateAt returns the event the leader makes for an audit key rotation at
// at, keeping the key retention once replaced.
func rotateAt(t *testing.T, s *State, at time.Time, retention time.Duration) Event {
	t.Helper()
	e, err := Command{Op: OpAuditKeyRotate, Duration: retention}.Event(s, at, DefaultAutoBanPolicy())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func auditIDs(s *State) string {
	var ids []string
	for _, k := range s.AuditKeys() {
		ids = append(ids, k.ID)
	}
	return strings.Join(ids, " ")
}

// The leader makes a random key named by AuditKeyID; each rotation makes
// the new key current and retires the one before it, which is forgotten
// once its retention has passed in event time (whatever event comes then)
// and never before; the current key is never forgotten.
func TestAuditKeyRotationAndRetention(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := NewState()
	apply := func(i uint64, e Event) Result {
		t.Helper()
		raw, err := MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalEvent(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		r := s.Apply(i, back)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	tick := func(i uint64, at time.Time) { // any event moves event time
		apply(i, Event{Type: TypeRuleAdded, Time: at, Rule: &RuleData{List: ListAllow, Prefix: netip.MustParsePrefix("192.0.2.0/24")}})
	}

	e1 := rotateAt(t, s, t0, 72*time.Hour)
	if e1.Type != TypeAuditKeyRotated || e1.AuditKey.ID != AuditKeyID(e1.AuditKey.Key) || e1.AuditKey.Key == ([32]byte{}) {
		t.Fatalf("event %+v", e1.AuditKey)
	}
	if r := apply(1, e1); !r.Changed {
		t.Fatalf("first key: %+v", r)
	}
	k1 := s.AuditKeys()[0]
	if !k1.Created.Equal(t0) || !k1.Retired.IsZero() || k1.Retention != 72*time.Hour {
		t.Fatalf("first key %+v", k1)
	}
	e2 := rotateAt(t, s, t0.Add(24*time.Hour), time.Hour)
	apply(2, e2)
	if e2.AuditKey.ID == k1.ID || auditIDs(s) != k1.ID+" "+e2.AuditKey.ID {
		t.Fatalf("keys %q after the second rotation", auditIDs(s))
	}
	if got := s.AuditKeys()[0].Retired; !got.Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("first key retired at %v", got)
	}
	// Replaying the same event changes nothing (its id is held already).
	if r := s.Apply(3, e2); r.Changed || r.Err != nil || len(s.AuditKeys()) != 2 {
		t.Fatalf("the same key again: %+v, keys %q", r, auditIDs(s))
	}
	e3 := rotateAt(t, s, t0.Add(48*time.Hour), 0)
	apply(4, e3)
	// k1 retired at +24h, kept 72h: until +96h. k2 retired at +48h, kept 1h.
	tick(5, t0.Add(49*time.Hour-time.Nanosecond))
	if auditIDs(s) != k1.ID+" "+e2.AuditKey.ID+" "+e3.AuditKey.ID {
		t.Fatalf("keys %q just within the second key's retention", auditIDs(s))
	}
	gen := s.AuditKeyGen()
	tick(6, t0.Add(49*time.Hour))
	if auditIDs(s) != k1.ID+" "+e3.AuditKey.ID || s.AuditKeyGen() == gen {
		t.Fatalf("keys %q (gen %d, was %d) once the second key's retention passed", auditIDs(s), s.AuditKeyGen(), gen)
	}
	tick(7, t0.Add(96*time.Hour-time.Nanosecond))
	if len(s.AuditKeys()) != 2 {
		t.Fatalf("keys %q within the first key's retention", auditIDs(s))
	}
	tick(8, t0.Add(1000*time.Hour))
	if auditIDs(s) != e3.AuditKey.ID {
		t.Fatalf("keys %q long after: want only the current one (retention 0, but never replaced)", auditIDs(s))
	}
	// A retention of zero ends with the replacement.
	e4 := rotateAt(t, s, t0.Add(1001*time.Hour), 0)
	apply(9, e4)
	if auditIDs(s) != e4.AuditKey.ID {
		t.Fatalf("keys %q: a key kept 0 outlived its replacement", auditIDs(s))
	}
}

// However short the rotation, the state holds at most MaxAuditKeys keys.
func TestAuditKeysBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := NewState()
	for i := range MaxAuditKeys + 10 {
		s.Apply(uint64(i+1), rotateAt(t, s, t0.Add(time.Duration(i)*time.Minute), MaxAuditKeyRetention))
	}
	keys := s.AuditKeys()
	if len(keys) != MaxAuditKeys || !keys[len(keys)-1].Created.Equal(t0.Add(time.Duration(MaxAuditKeys+9)*time.Minute)) {
		t.Fatalf("%d keys, newest created %v", len(keys), keys[len(keys)-1].Created)
	}
}

// Audit keys go into snapshots with their times and retention, and come
// back out as they were; a snapshot's bad audit key lines are refused.
func TestAuditKeysSnapshot(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := NewState()
	s.Apply(1, rotateAt(t, s, t0, 72*time.Hour))
	s.Apply(2, rotateAt(t, s, t0.Add(24*time.Hour), 72*time.Hour))
	snap := snapshotBytes(t, s)
	for _, want := range []string{`"audit_keys":2`, `"retention_s":259200`, `"retired":"2026-12-01T12:00:00Z"`} {
		if !bytes.Contains(snap, []byte(want)) {
			t.Fatalf("snapshot lacks %s:\n%s", want, snap)
		}
	}
	r, err := ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	got, want := r.AuditKeys(), s.AuditKeys()
	if len(got) != 2 || got[0] != want[0] || got[1].ID != want[1].ID || got[1].Key != want[1].Key || !got[1].Created.Equal(want[1].Created) {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, r), snap) {
		t.Fatal("restored snapshot differs")
	}
	hdr := `{"v":1,"index":1,"time":"2026-11-30T12:00:00Z","bans":0,"rules":0,"pins":0,"ticket_keys":0,"audit_keys":%d,"applied":0}` + "\n"
	key := `"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="`
	for name, body := range map[string]string{
		"short key":           `{"id":"c1","key":"AAAA","retention_s":0,"created":"2026-11-30T12:00:00Z"}`,
		"bad id":              `{"id":"c:1",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z"}`,
		"negative retention":  `{"id":"c1",` + key + `,"retention_s":-1,"created":"2026-11-30T12:00:00Z"}`,
		"current key retired": `{"id":"c1",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z","retired":"2026-11-30T12:00:00Z"}`,
		"old key not retired": `{"id":"c1",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z"}` + "\n" +
			`{"id":"c2",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z"}`,
		"duplicate id": `{"id":"c1",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z","retired":"2026-11-30T12:00:00Z"}` + "\n" +
			`{"id":"c1",` + key + `,"retention_s":0,"created":"2026-11-30T12:00:00Z"}`,
	} {
		n := strings.Count(body, "\n") + 1
		in := strings.Replace(hdr, "%d", string(rune('0'+n)), 1) + body + "\n"
		if _, err := ReadSnapshot(strings.NewReader(in)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
}
