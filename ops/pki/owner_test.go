package pki

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestParseOwner(t *testing.T) {
	if o, err := ParseOwner("65532:65532"); err != nil || o != (Owner{65532, 65532}) {
		t.Fatalf("ParseOwner(65532:65532) = %v, %v", o, err)
	}
	for _, bad := range []string{"", "1", "1:", ":1", "a:b", "-1:0", "1:2:3", "1:2x"} {
		if _, err := ParseOwner(bad); err == nil {
			t.Errorf("ParseOwner(%q): no error", bad)
		}
	}
}

// TestGrantNodes gives the node files to another user, the rest to the
// directory's owner, and the directory 0710 with the node's group. It
// needs root (CAP_CHOWN), as the compose init service has.
func TestGrantNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "cluster")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keeper := Owner{UID: 1234, GID: 1235}
	if err := os.Chown(dir, keeper.UID, keeper.GID); err != nil {
		t.Fatal(err)
	}
	l, err := Init(dir, InitOptions{Nodes: []string{"n1", "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	node := Owner{UID: 65532, GID: 65533}
	for range 2 { // idempotent
		if err := l.GrantNodes(node); err != nil {
			t.Fatal(err)
		}
	}
	owner := func(path string) (Owner, os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return Owner{int(st.Uid), int(st.Gid)}, fi.Mode()
	}
	for _, id := range l.Nodes {
		f := l.Node(id)
		for _, p := range []string{f.Cert, f.Key} {
			if o, _ := owner(p); o != node {
				t.Errorf("%s owned by %v, want the node user %v", p, o, node)
			}
		}
		if _, m := owner(f.Key); m.Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f.Key, m)
		}
	}
	a := l.Admin()
	for _, p := range []string{a.Cert, a.Key, l.CACert(), l.CAKey()} {
		if o, _ := owner(p); o != keeper {
			t.Errorf("%s owned by %v, want the directory's owner %v", p, o, keeper)
		}
	}
	if o, m := owner(dir); o != (Owner{keeper.UID, node.GID}) || m.Perm() != 0o710 {
		t.Errorf("directory: owner %v mode %v, want %d:%d 0710", o, m.Perm(), keeper.UID, node.GID)
	}
	// The layout still checks out, so a second init --if-missing is a no-op.
	if _, err := Init(dir, InitOptions{Nodes: []string{"n1", "n2"}}); err == nil {
		t.Fatal("second Init succeeded over an initialised directory")
	}
}
