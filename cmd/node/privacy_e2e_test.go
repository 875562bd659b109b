package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clientLines decodes every JSON line of b that has a "client" field.
func clientLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if _, ok := m["client"]; ok {
			out = append(out, m)
		}
	}
	return out
}

// A node names clients by their hash under the cluster's key, which the
// leader commits at start, in its logs (every level: the request log, the
// auto-ban's line) and in its audit records alike, and never by their
// address: the log and the audit file hold no byte string of a client's
// address.
func TestE2EClientAddressesNeverLogged(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "chimalli.yaml")
	audit := filepath.Join(dir, "audit.jsonl")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {listen: "127.0.0.1:%d"}
rate_limit: {capacity: 2, refill_per_sec: 0.001, hard_factor: 2}
auto_ban: {threshold: 4, duration: 1h}
audit: {file: %q, buffer: 64}
log: {level: debug, format: json}
`, port, audit)), 0o600)
	p := spawnNode(t, dir, "--config", cfg)
	const abuser = "127.0.0.9"
	clients := []string{abuser}

	// The first key commits within moments of the start: wait for a
	// record hashed under it (a cluster key's id starts with "c"), asking
	// from a new address each time (so no poller is rate-limited).
	keyID := ""
	eventually(t, "a record hashed under the cluster's key", func() bool {
		if len(clients) > 250 {
			t.Fatal("no cluster key after 250 requests")
		}
		poller := fmt.Sprintf("127.0.1.%d", len(clients))
		clients = append(clients, poller)
		fetchFrom(poller, p.addr, "/")
		b, _ := os.ReadFile(audit)
		for _, rec := range clientLines(t, b) {
			if c, _ := rec["client"].(string); strings.HasPrefix(c, "c") {
				keyID, _, _ = strings.Cut(c, ":")
				return true
			}
		}
		return false
	})

	for i := 0; i < 50 && !strings.Contains(p.stderr.String(), `"msg":"ban added"`); i++ {
		fetchFrom(abuser, p.addr, "/")
	}
	eventually(t, "the ban's log line", func() bool { return strings.Contains(p.stderr.String(), `"msg":"ban added"`) })
	fetchFrom(abuser, p.addr, "/")
	eventually(t, "the abuser's refusal in the audit file", func() bool {
		b, _ := os.ReadFile(audit)
		return bytes.Contains(b, []byte(`"reason":"banned"`))
	})

	logs := []byte(p.stderr.String())
	records, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range clients {
		if i := bytes.Index(logs, []byte(addr)); i >= 0 {
			t.Errorf("the log holds %s: …%s…", addr, logs[max(0, i-200):min(len(logs), i+100)])
		}
		if bytes.Contains(records, []byte(addr)) {
			t.Errorf("the audit file holds %s", addr)
		}
	}

	// Under the cluster's key the node names the abuser alike in its ban
	// line, its request log and its audit records (the pollers made one
	// request each: only the abuser was limited or banned).
	abused := func(l map[string]any) bool {
		r, _ := l["reason"].(string)
		return strings.HasPrefix(r, "rate_limited") || r == "banned"
	}
	logLines, recLines := clientLines(t, logs), clientLines(t, records)
	sources := []struct {
		name  string
		lines []map[string]any
		match func(map[string]any) bool
	}{
		{"ban log", logLines, func(l map[string]any) bool { return l["msg"] == "ban added" }},
		{"request log", logLines, func(l map[string]any) bool { return l["msg"] == "request" && abused(l) }},
		{"audit records", recLines, abused},
	}
	want := ""
	for _, src := range sources {
		seen := map[string]bool{}
		for _, l := range src.lines {
			if c, _ := l["client"].(string); src.match(l) {
				seen[c] = true
			}
		}
		if len(seen) != 1 {
			t.Fatalf("%s: the abuser as %v, want one hash under key %s\nlog:\n%s\naudit:\n%s", src.name, seen, keyID, logs, records)
		}
		for c := range seen {
			if !strings.HasPrefix(c, keyID+":") || (want != "" && c != want) {
				t.Fatalf("%s names the abuser %s; want %s under key %s", src.name, c, want, keyID)
			}
			want = c
		}
	}
}
