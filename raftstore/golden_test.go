package raftstore

import (
	"bufio"
	"bytes"
	"os"
	"testing"
)

// TestEventsGolden pins the log's wire form (docs/events.md shows these
// lines): every line of the golden file decodes and encodes back to the
// same bytes. A change that breaks it changes the schema: bump
// SchemaVersion instead.
func TestEventsGolden(t *testing.T) {
	f, err := os.Open("testdata/events_golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	types := map[EventType]bool{}
	for sc.Scan() {
		line := sc.Bytes()
		e, err := UnmarshalEvent(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		back, err := MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, line) {
			t.Fatalf("round trip changed the line:\n%s\n%s", line, back)
		}
		types[e.Type] = true
		if e.Type.Secret() != (e.Type == TypeTicketKeyAdded || e.Type == TypeAuditKeyRotated) {
			t.Errorf("%s: Secret() = %v", e.Type, e.Type.Secret())
		}
	}
	for _, ty := range []EventType{TypeBanAdded, TypeBanLifted, TypeRuleAdded, TypeRuleRemoved, TypeTrustPinned,
		TypeTrustChanged, TypeTrustRevoked, TypeTicketKeyAdded, TypeAuditKeyRotated} {
		if !types[ty] {
			t.Errorf("no golden line for %s", ty)
		}
	}
}
