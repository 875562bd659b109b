package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/events"
	"github.com/chimalli/chimalli/events/natsplane"
	"github.com/chimalli/chimalli/tofu/tofutest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTails runs "audit tail" and "events tail" in process against a
// node's NATS client port with the admin identity: audit records of two
// nodes and a trust conflict in CHIMALLI_AUDIT, a ban in CHIMALLI_EVENTS.
func TestTails(t *testing.T) {
	n, l, _ := natsNode(t)
	url := "tls://" + n.events.clientAddr().String()
	admin, _ := dialNATS(t, n, l.Admin())
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	client := "p1a2b3c:0123456789abcdef0123456789abcdef"
	for i, r := range []events.AuditRecord{
		{ID: "n1/b/1", Time: now, Node: "n1", Client: client, Stage: events.StageRequest, Scheme: "gemini", Host: "localhost", Path: "/", Status: 20, Reason: "allowed"},
		{ID: "n2/b/1", Time: now, Node: "n2", Client: client, Stage: events.StageRequest, Scheme: "gemini", Host: "localhost", Path: "/admin/", Status: 61, Reason: "cert_not_authorized"},
		{ID: "n2/b/2", Time: now, Node: "n2", Client: client, Stage: events.StageAccept, Reason: "banned"},
	} {
		if _, err := js.Publish(ctx, natsplane.AuditSubject("chimalli", r.Node), r.AppendJSON(nil)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	// A trust conflict seen by n1 (the node itself publishes it).
	alice, mallory := tofutest.LoopbackCert(t, "alice"), tofutest.LoopbackCert(t, "mallory")
	addr := n.srv.Addr().String()
	if line, err := fetchAs("", addr, "/app/", &alice); err != nil || !strings.HasPrefix(line, "20") {
		t.Fatalf("alice: %q, %v", line, err)
	}
	if line, err := fetchAs("", addr, "/app/", &mallory); err != nil || !strings.HasPrefix(line, "61") {
		t.Fatalf("mallory: %q, %v", line, err)
	}
	// A ban, published by the node as a state event.
	if r := requestBan(t, admin, `{"prefix":"192.0.2.7","duration":"1h","reason":"scanner"}`); r.Error != "" {
		t.Fatal(r.Error)
	}
	// The publishers are asynchronous: wait for both streams to hold them.
	for _, want := range []struct {
		stream string
		msgs   uint64
	}{{natsplane.StreamAudit, 6}, {natsplane.StreamEvents, 1}} {
		for {
			s, err := js.Stream(ctx, want.stream)
			if err != nil {
				t.Fatal(err)
			}
			if s.CachedInfo().State.Msgs >= want.msgs {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s holds %d messages, want %d", want.stream, s.CachedInfo().State.Msgs, want.msgs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	conn := []string{"--nats", url, "--certs", l.Dir}
	tail := func(args ...string) []string {
		t.Helper()
		out, err := execute(t, append(args, conn...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return strings.Split(strings.TrimRight(out, "\n"), "\n")
	}

	// The three records published above, and what n1 itself records of
	// alice's and mallory's requests (its own audit publisher) and of the
	// conflict.
	lines := tail("audit", "tail", "--since", "1h", "--no-follow")
	if len(lines) != 6 {
		t.Fatalf("audit tail: %d lines, want 6:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	all := strings.Join(lines, "\n")
	for _, want := range [][]string{
		{"n1", client, " 20 ", "allowed", "localhost/"},
		{"n2", " 61 ", "cert_not_authorized", "localhost/admin/"},
		{"n2", "  0 ", "banned", " -"},
		{"n1", "trust_conflict", "claim localhost/app/", "pinned sha256:", "presented sha256:"},
		{"n1", " 61 ", "cert_not_authorized", "localhost/app/"},
	} {
		found := false
		for _, l := range lines {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no line with %q in:\n%s", want, all)
		}
	}
	// Aligned: the node column starts at the same place on every line.
	for _, l := range lines {
		if l[25:27] != "n1" && l[25:27] != "n2" {
			t.Errorf("misaligned line %q", l)
		}
	}

	if lines := tail("audit", "tail", "--since", "1h", "--no-follow", "--denied"); len(lines) != 4 || strings.Contains(strings.Join(lines, "\n"), "allowed") {
		t.Errorf("--denied:\n%s", strings.Join(lines, "\n"))
	}
	if lines := tail("audit", "tail", "--since", "1h", "--no-follow", "--node", "n2"); len(lines) != 2 || strings.Contains(strings.Join(lines, "\n"), " n1 ") {
		t.Errorf("--node n2:\n%s", strings.Join(lines, "\n"))
	}
	lines = tail("audit", "tail", "--all", "--json", "--count", "1")
	var rec events.AuditRecord
	if len(lines) != 1 {
		t.Fatalf("--count 1: %q", lines)
	}
	if rec, err = events.ParseAuditRecord([]byte(lines[0])); err != nil || rec.ID != "n1/b/1" {
		t.Errorf("--json: %q: %+v, %v", lines[0], rec, err)
	}

	// Alice's claim, then the ban.
	lines = tail("events", "tail", "--all", "--no-follow")
	if len(lines) != 2 || !strings.Contains(lines[0], "trust.pinned") || !strings.Contains(lines[0], "subject=localhost/app/") ||
		!strings.Contains(lines[1], "ban.added") || !strings.Contains(lines[1], "reason=scanner") ||
		strings.Contains(lines[1], "192.0.2.7") {
		t.Errorf("events tail: %q", lines)
	}
	lines = tail("events", "tail", "--since", "1h", "--no-follow", "--json")[1:]
	var ev struct {
		Type, ID, Raftindex string
		Data                map[string]any
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev.Type != "io.github.chimalli.ban.added" ||
		ev.Raftindex == "" || ev.Data["reason"] != "scanner" {
		t.Errorf("events tail --json: %q", lines)
	}
	if lines := tail("events", "tail", "--all", "--count", "1"); len(lines) != 1 {
		t.Errorf("events tail --count 1: %q", lines)
	}

	// Bad flags are errors, not hangs.
	if _, err := execute(t, "audit", "tail", "--certs", l.Dir); err == nil || !strings.Contains(err.Error(), "no NATS address") {
		t.Errorf("no address: %v", err)
	}
	if _, err := execute(t, "audit", "tail", "--nats", url); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("no credentials: %v", err)
	}
	if _, err := execute(t, "audit", "tail", "--node", "a.b", "--nats", url, "--certs", l.Dir); err == nil {
		t.Error("--node a.b accepted")
	}
}
