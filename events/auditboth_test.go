package events

import (
	"bytes"
	"path/filepath"
	"testing"
)

// RecordToBoth writes the file's line and publishes the same bytes under
// the same ID; an invalid record is refused and counted by each.
func TestRecordToBoth(t *testing.T) {
	_, nc := runJetStream(t)
	s := createAuditStream(t, nc)
	p := openPub(t, auditTestConfig(nc, filepath.Join(t.TempDir(), "spool")))
	var buf bytes.Buffer
	l := NewAuditLog(&buf, AuditLogConfig{Node: "edge-1"})

	r := newRecord()
	if logged, published := RecordToBoth(l, p, r); !logged || !published {
		t.Fatalf("RecordToBoth = %v, %v; want both taken", logged, published)
	}
	bad := newRecord()
	bad.Client = "192.0.2.7" // a raw address: refused by both
	if logged, published := RecordToBoth(l, p, bad); logged || published {
		t.Fatalf("RecordToBoth of an invalid record = %v, %v; want neither", logged, published)
	}
	closeLog(t, l)
	closePub(t, p)
	waitStored(t, s, 1)

	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("the file holds %d lines, want 1:\n%s", len(lines), buf.Bytes())
	}
	m, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, lines[0]) {
		t.Fatalf("published %s\nfile line  %s\nwant the same bytes", m.Data, lines[0])
	}
	if id := m.Header.Get("Nats-Msg-Id"); id != r.ID {
		t.Fatalf("published under %q, the file's record is %q", id, r.ID)
	}
	if ls, ps := l.Stats(), p.Stats(); ls.Invalid != 1 || ps.Invalid != 1 || ls.Written != 1 || ps.Published != 1 {
		t.Fatalf("log %+v, publisher %+v; want one written and one invalid each", ls, ps)
	}
}
