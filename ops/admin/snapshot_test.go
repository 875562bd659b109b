package admin

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// A backup saved over the socket restores over it: the state is the
// saved one again, bans added since included.
func TestSnapshotAPISaveRestore(t *testing.T) {
	sock, n := openStateAdmin(t)
	ctx := testCtx(t)
	for _, p := range []string{"192.0.2.1", "192.0.2.2"} {
		if _, err := AddBan(ctx, sock, BanRequest{Prefix: p, Duration: "1h"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := AddRule(ctx, sock, RuleRequest{List: "deny", Prefix: "198.51.100.0/24"}); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	h, err := SaveSnapshot(ctx, sock, &file)
	if err != nil {
		t.Fatal(err)
	}
	saved := n.Status()
	if h.SHA256 != saved.StateHash || h.Index != saved.AppliedIndex || h.Bans != 2 || h.Rules != 1 || h.Node != "n1" {
		t.Fatalf("header %+v, status %+v", h, saved)
	}
	if _, err := AddBan(ctx, sock, BanRequest{Prefix: "192.0.2.3", Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	res, err := RestoreSnapshot(ctx, sock, bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.StateHash != h.SHA256 || res.Bans != 2 || res.Rules != 1 || res.Leader != "n1" || res.RaftIndex <= h.Index {
		t.Fatalf("restore result %+v, backup %+v", res, h)
	}
	if st, err := ClusterStatus(ctx, sock); err != nil || st.StateHash != h.SHA256 {
		t.Fatalf("status after the restore: %+v, %v", st, err)
	}
	bans, err := ListBans(ctx, sock, true)
	if err != nil || len(bans) != 2 {
		t.Fatalf("bans after the restore: %+v, %v", bans, err)
	}
}

// A bad backup is answered 400 with the reason and changes nothing; the
// endpoints take only their method.
func TestSnapshotAPIRefusesBadBackup(t *testing.T) {
	sock, n := openStateAdmin(t)
	ctx := testCtx(t)
	if _, err := AddBan(ctx, sock, BanRequest{Prefix: "192.0.2.1", Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := SaveSnapshot(ctx, sock, &file); err != nil {
		t.Fatal(err)
	}
	if _, err := AddBan(ctx, sock, BanRequest{Prefix: "192.0.2.2", Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	before := n.Status()
	good := file.String()
	flipped := []byte(good)
	flipped[len(flipped)-5] ^= 0x04
	for _, tt := range []struct {
		name, body, want string
	}{
		{"flipped byte", string(flipped), "checksum mismatch"},
		{"truncated", good[:len(good)-40], "truncated"},
		{"wrong version", strings.Replace(good, `"v":1,`, `"v":3,`, 1), "format version 3"},
		{"not a backup", `{"op":"ban.add"}`, "not a Chimalli backup"},
		{"empty", "", "empty file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, sb := send(t, sock, http.MethodPost, "/cluster/snapshot/restore", tt.body)
			if code != http.StatusBadRequest || !strings.Contains(sb.Error, tt.want) || !strings.HasSuffix(sb.Error, "nothing was changed") {
				t.Fatalf("restore %s = %d %q, want 400 with %q", tt.name, code, sb.Error, tt.want)
			}
		})
	}
	unchanged(t, n, before)
	if _, err := RestoreSnapshot(ctx, sock, strings.NewReader(good[:10])); err == nil || !strings.Contains(err.Error(), "snapshot restore: bad backup") {
		t.Fatalf("RestoreSnapshot of a cut file = %v", err)
	}
	unchanged(t, n, before)
	if code, _ := send(t, sock, http.MethodPost, "/cluster/snapshot", "{}"); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /cluster/snapshot = %d, want 405", code)
	}
	if code, _ := send(t, sock, http.MethodGet, "/cluster/snapshot/restore", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /cluster/snapshot/restore = %d, want 405", code)
	}
}
