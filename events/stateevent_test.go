package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
	"github.com/nats-io/nats.go"
)

// testHasher is a hasher with a fixed key, so golden messages are stable.
func testHasher(t testing.TB) *IPHasher {
	t.Helper()
	h, err := NewIPHasher("k1", bytes.Repeat([]byte{0x42}, MinKeyBytes))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// headerOrder is the order FormatStateMessage prints headers in.
var headerOrder = []string{HeaderMsgID, HeaderSpecVersion, HeaderID, HeaderSource, HeaderType, HeaderTime,
	HeaderContentType, HeaderRaftIndex, HeaderSchemaVersion}

// formatMsg prints a message as docs/events.md shows it: the subject, the
// headers, a blank line, the body.
func formatMsg(m *nats.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "subject: %s\n", m.Subject)
	for _, k := range headerOrder {
		fmt.Fprintf(&b, "%s: %s\n", k, m.Header.Get(k))
	}
	if len(m.Header) != len(headerOrder) {
		fmt.Fprintf(&b, "(%d headers, want %d)\n", len(m.Header), len(headerOrder))
	}
	fmt.Fprintf(&b, "\n%s\n", m.Data)
	return b.String()
}

func goldenEvents(t *testing.T) []raftstore.Event {
	t.Helper()
	f, err := os.Open("../raftstore/testdata/events_golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []raftstore.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := raftstore.UnmarshalEvent(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestStateMessagesGolden pins the published form of every state event
// type (docs/events.md shows these messages), from the log's golden
// events, and checks that no message carries a raw address.
func TestStateMessagesGolden(t *testing.T) {
	h := testHasher(t)
	var b strings.Builder
	types := map[raftstore.EventType]bool{}
	for i, e := range goldenEvents(t) {
		index := uint64(101 + i)
		m, err := StateMessage("c1", index, e, h)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type.Secret() && Published(e.Type) {
			t.Fatalf("secret type %s is published", e.Type)
		}
		if !Published(e.Type) {
			if m != nil {
				t.Fatalf("%s is published", e.Type)
			}
			continue
		}
		types[e.Type] = true
		if !json.Valid(m.Data) {
			t.Fatalf("%s: body is not JSON: %s", e.Type, m.Data)
		}
		if got, err := StateMsgIndex(m.Header); err != nil || got != index {
			t.Fatalf("%s: raft index %d, %v; want %d", e.Type, got, err, index)
		}
		assertNoRawAddr(t, m, e)
		fmt.Fprintf(&b, "# %s\n%s\n", e.Type, formatMsg(m))
	}
	gap, err := GapMessage("c1", 5, 9, time.Date(2026, 11, 30, 14, 2, 3, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := StateMsgIndex(gap.Header); got != 9 {
		t.Fatalf("gap marker's raft index %d, want 9", got)
	}
	fmt.Fprintf(&b, "# %s\n%s", TypeEventsGap, formatMsg(gap))
	for _, ty := range []raftstore.EventType{raftstore.TypeBanAdded, raftstore.TypeBanLifted, raftstore.TypeRuleAdded,
		raftstore.TypeRuleRemoved, raftstore.TypeTrustPinned, raftstore.TypeTrustChanged, raftstore.TypeTrustRevoked} {
		if !types[ty] {
			t.Errorf("no golden message for %s", ty)
		}
	}
	const golden = "testdata/state_messages_golden.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("published form changed (go test -run StateMessagesGolden -update ./events/ and update docs/events.md):\n%s", b.String())
	}
}

// assertNoRawAddr fails if m names e's prefix in any form: subject,
// header names and values, body (as text or as address bytes).
func assertNoRawAddr(t testing.TB, m *nats.Msg, e raftstore.Event) {
	t.Helper()
	var p netip.Prefix
	switch {
	case e.Ban != nil:
		p = e.Ban.Prefix
	case e.Rule != nil:
		p = e.Rule.Prefix
	default:
		return
	}
	var all bytes.Buffer
	all.WriteString(m.Subject)
	for k, vs := range m.Header {
		all.WriteString(k)
		for _, v := range vs {
			all.WriteString(v)
		}
	}
	all.Write(m.Data)
	a := p.Addr()
	forms := []string{p.String(), a.String(), a.StringExpanded(), string(a.AsSlice())}
	if a.Is4() {
		forms = append(forms, netip.AddrFrom16(a.As16()).String())
	}
	for _, f := range forms {
		if bytes.Contains(all.Bytes(), []byte(f)) {
			t.Fatalf("message for %s carries the raw address as %q:\n%s", e.Type, f, formatMsg(m))
		}
	}
}

func TestStateMessageHashesThePrefix(t *testing.T) {
	h := testHasher(t)
	for _, tc := range []struct {
		name   string
		prefix string
		bits   int
		family string
	}{
		{"ipv4 host", "192.0.2.7/32", 32, "ipv4"},
		{"ipv4 net", "198.51.100.0/24", 24, "ipv4"},
		{"ipv6 net", "2001:db8:4::/48", 48, "ipv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := netip.MustParsePrefix(tc.prefix)
			e := raftstore.Event{Version: 1, Type: raftstore.TypeBanAdded, Time: time.Unix(0, 0),
				Ban: &raftstore.BanData{Prefix: p, Reason: "x", Source: "operator"}}
			m, err := StateMessage("c1", 7, e, h)
			if err != nil {
				t.Fatal(err)
			}
			var got pubBan
			if err := json.Unmarshal(m.Data, &got); err != nil {
				t.Fatal(err)
			}
			if got.PrefixHash != h.HashAddr(p.Addr()) || got.PrefixBits != tc.bits || got.Family != tc.family {
				t.Fatalf("data %+v", got)
			}
			assertNoRawAddr(t, m, e)
		})
	}
}

func TestValidateCluster(t *testing.T) {
	for _, ok := range []string{"c1", "prod-eu_2", strings.Repeat("a", 64)} {
		if err := ValidateCluster(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "*", ">", strings.Repeat("a", 65), "é"} {
		if err := ValidateCluster(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
