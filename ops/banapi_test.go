package ops

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
)

func openBanAdmin(t *testing.T) (string, *raftstore.Bans) {
	t.Helper()
	bans, err := raftstore.NewBans(raftstore.BansConfig{AutoBan: raftstore.DefaultAutoBanPolicy(), Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	bans.Open()
	t.Cleanup(func() { bans.Close() })
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

	if list, err := ListBans(ctx, sock); err != nil || len(list) != 0 {
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
	list, err := ListBans(ctx, sock)
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
	if code, sb := adminRequest(t, sock, http.MethodPut, "/bans"); code != http.StatusMethodNotAllowed || sb.Status != "method_not_allowed" {
		t.Fatalf("PUT /bans = %d %+v", code, sb)
	}
	if code, _ := adminRequest(t, sock, http.MethodDelete, "/bans?prefix=nonsense"); code != http.StatusBadRequest {
		t.Fatalf("DELETE with a bad prefix = %d, want 400", code)
	}
}

func TestBanClientNoNode(t *testing.T) {
	_, err := ListBans(testCtx(t), filepath.Join(shortDir(t), "none.sock"))
	if !errors.Is(err, ErrNoNode) {
		t.Fatalf("ListBans without a node = %v, want ErrNoNode", err)
	}
}
