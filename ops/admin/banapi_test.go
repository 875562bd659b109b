package admin

import (
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/testlog"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/raftstore/cluster"
)

// openBanAdmin serves the ban endpoints of a real single-node cluster
// (Raft over its in-memory transport, log in a temp dir).
func openBanAdmin(t *testing.T) (string, *cluster.Node) {
	t.Helper()
	bans, err := cluster.New(cluster.Config{ID: "n1", Dir: t.TempDir(), BootstrapExpect: 1,
		AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := bans.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bans.Close() })
	if err := bans.WaitLeader(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortDir(t), "a.sock")
	a := NewAdmin(path, nil, testlog.New(t))
	a.HandleBans(bans)
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(testCtx(t)) })
	return path, bans
}

func TestBanAPI(t *testing.T) {
	sock, bans := openBanAdmin(t)
	ctx := testCtx(t)

	if list, err := ListBans(ctx, sock, false); err != nil || len(list) != 0 {
		t.Fatalf("ListBans on an empty node = %v, %v", list, err)
	}
	e, err := AddBan(ctx, sock, BanRequest{Prefix: "192.0.2.7", Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Prefix != "192.0.2.7/32" || e.Reason != "operator" || e.Source != "operator" || e.Until == nil || e.Strikes != 1 {
		t.Fatalf("AddBan = %+v", e)
	}
	if d := e.Until.Sub(e.Since); d != time.Hour {
		t.Fatalf("ban length = %s, want 1h", d)
	}
	if !bans.Banned(netip.MustParseAddr("192.0.2.7"), time.Now()) {
		t.Fatal("the store does not hold the added ban")
	}
	if _, err := AddBan(ctx, sock, BanRequest{Prefix: "2001:db8::/48", Reason: "scanner"}); err != nil {
		t.Fatal(err)
	}
	list, err := ListBans(ctx, sock, false)
	if err != nil || len(list) != 2 || list[1].Prefix != "2001:db8::/48" || list[1].Until != nil || list[1].Reason != "scanner" {
		t.Fatalf("ListBans = %+v, %v", list, err)
	}

	if err := LiftBan(ctx, sock, "192.0.2.7/32"); err != nil {
		t.Fatal(err)
	}
	if bans.Banned(netip.MustParseAddr("192.0.2.7"), time.Now()) {
		t.Fatal("lifted ban still holds")
	}
	if err := LiftBan(ctx, sock, "192.0.2.7"); err == nil || !strings.Contains(err.Error(), "no active ban for 192.0.2.7/32") {
		t.Fatalf("lifting a lifted ban = %v, want a not-found error", err)
	}
}

func TestBanAPIRejectsBadInput(t *testing.T) {
	sock, _ := openBanAdmin(t)
	ctx := testCtx(t)
	tests := []struct {
		name string
		req  BanRequest
		want string
	}{
		{"not a prefix", BanRequest{Prefix: "example.org"}, "prefix:"},
		{"empty prefix", BanRequest{}, "prefix:"},
		{"negative duration", BanRequest{Prefix: "192.0.2.1", Duration: "-1h"}, "duration:"},
		{"not a duration", BanRequest{Prefix: "192.0.2.1", Duration: "soon"}, "duration:"},
		{"reason not a token", BanRequest{Prefix: "192.0.2.1", Reason: "Bad Reason"}, "reason:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AddBan(ctx, sock, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddBan(%+v) = %v, want an error naming %s", tt.req, err, tt.want)
			}
		})
	}
	if code, sb := send(t, sock, http.MethodPut, "/bans", ""); code != http.StatusMethodNotAllowed || sb.Status != "method_not_allowed" {
		t.Fatalf("PUT /bans = %d %+v", code, sb)
	}
	if code, _ := send(t, sock, http.MethodDelete, "/bans?prefix=nonsense", ""); code != http.StatusBadRequest {
		t.Fatalf("DELETE with a bad prefix = %d, want 400", code)
	}
}

func TestBanClientNoNode(t *testing.T) {
	_, err := ListBans(testCtx(t), filepath.Join(shortDir(t), "none.sock"), false)
	if !errors.Is(err, ErrNoNode) {
		t.Fatalf("ListBans without a node = %v, want ErrNoNode", err)
	}
}

// The server refuses what would make a ban permanent by accident, lock out
// everyone, or carry a reason it cannot keep, whichever client sends it.
func TestBanAPIGuardRails(t *testing.T) {
	sock, bans := openBanAdmin(t)
	long := strings.Repeat("a", 5000)
	tests := []struct {
		name string
		body string
		code int
		want string
	}{
		{"zero duration", `{"prefix":"192.0.2.1","duration":"0s"}`, 400, "duration: must be positive, got 0s"},
		{"bare zero duration", `{"prefix":"192.0.2.1","duration":"0"}`, 400, "duration: must be positive"},
		{"negative duration", `{"prefix":"192.0.2.1","duration":"-5m"}`, 400, "duration: must be positive, got -5m0s"},
		{"everything v4", `{"prefix":"0.0.0.0/0"}`, 400, "prefix: too broad: 0.0.0.0/0 is wider than /16"},
		{"everything v6", `{"prefix":"::/0","duration":"1h"}`, 400, "prefix: too broad: ::/0 is wider than /32"},
		{"everything v4-mapped", `{"prefix":"::ffff:0.0.0.0/96"}`, 400, "prefix: too broad: 0.0.0.0/0"},
		{"a /8", `{"prefix":"10.0.0.0/8","duration":"1h"}`, 400, "too broad"},
		{"a /31 of IPv6", `{"prefix":"2001:db8::/31"}`, 400, "too broad"},
		{"long reason", `{"prefix":"192.0.2.1","reason":"` + long[:65] + `"}`, 400, "reason: 65 bytes, at most 64"},
		{"reason with a control character", `{"prefix":"192.0.2.1","reason":"a\u0007b"}`, 400, `reason: "a\ab" is not a token of [a-z0-9_.-]`},
		{"huge body", `{"prefix":"192.0.2.1","reason":"` + long + `"}`, 413, "body: larger than 4096 bytes"},
		{"not JSON", `prefix=192.0.2.1`, 400, "body: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, sb := send(t, sock, http.MethodPost, "/bans", tt.body)
			if code != tt.code || !strings.Contains(sb.Error, tt.want) {
				t.Fatalf("POST %.80s = %d %q, want %d and an error containing %q", tt.body, code, sb.Error, tt.code, tt.want)
			}
			if strings.Contains(sb.Error, long[:100]) {
				t.Fatalf("the error echoes the whole reason: %.200q", sb.Error)
			}
		})
	}
	if n := bans.BanSet().Len(); n != 0 {
		t.Fatalf("refused requests left %d bans", n)
	}

	ok := []struct{ name, body string }{
		{"a /16", `{"prefix":"198.51.0.0/16","duration":"1h"}`},
		{"a /32 of IPv6", `{"prefix":"2001:db8::/32","duration":"1h"}`},
		{"everything, forced", `{"prefix":"0.0.0.0/0","duration":"1m","force":true}`},
		{"permanent, spelt out", `{"prefix":"192.0.2.9","duration":"permanent"}`},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if code, sb := send(t, sock, http.MethodPost, "/bans", tt.body); code != 200 {
				t.Fatalf("POST %s = %d %q, want 200", tt.body, code, sb.Error)
			}
		})
	}
	list, err := ListBans(testCtx(t), sock, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.Prefix == "192.0.2.9/32" && (e.Until != nil || !e.Permanent) {
			t.Fatalf("a permanent ban lists as %+v", e)
		}
		if e.Prefix != "192.0.2.9/32" && (e.Until == nil || e.Permanent) {
			t.Fatalf("a timed ban lists as %+v", e)
		}
	}
}
