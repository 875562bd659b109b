package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/chimalli/chimalli/ops/pki"
)

func TestClusterInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := execute(t, "cluster", "init", "--nodes", "n1,n2,n3", "--hosts", "n1=gw1.example.org,192.0.2.1", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Move "+filepath.Join(dir, "ca.key")+" offline") {
		t.Errorf("output does not tell to move ca.key offline:\n%s", out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"admin.crt", "admin.key", "ca.crt", "ca.key", "n1.crt", "n1.key", "n2.crt", "n2.key", "n3.crt", "n3.key"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	l := &pki.Layout{Dir: dir, Nodes: []string{"n1", "n2", "n3"}}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	n1, err := pki.Load(l.Node("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if leaf := n1.Identity; leaf != (pki.Identity{Kind: pki.KindNode, Name: "n1"}) {
		t.Fatalf("n1 identity %s", leaf)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))

	t.Run("again refuses", func(t *testing.T) {
		if _, err := execute(t, "cluster", "init", "--nodes", "n1,n2,n3", "--out", dir); !errors.Is(err, pki.ErrInitialised) {
			t.Fatalf("second init: %v, want ErrInitialised", err)
		}
	})
	t.Run("again with --if-missing succeeds", func(t *testing.T) {
		out, err := execute(t, "cluster", "init", "--nodes", "n1,n2,n3", "--out", dir, "--if-missing")
		if err != nil || !strings.Contains(out, "already initialised") {
			t.Fatalf("init --if-missing: %v\n%s", err, out)
		}
	})
	t.Run("--if-missing with another node set fails", func(t *testing.T) {
		if _, err := execute(t, "cluster", "init", "--nodes", "n1,n2,n3,n4", "--out", dir, "--if-missing"); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("init: %v, want fs.ErrExist", err)
		}
	})
	t.Run("add a node", func(t *testing.T) {
		if _, err := execute(t, "cluster", "init", "--add-node", "n4", "--hosts", "n4=192.0.2.4", "--out", dir); err != nil {
			t.Fatal(err)
		}
		n4, err := pki.Load(pki.Files{CA: l.CACert(), Cert: filepath.Join(dir, "n4.crt"), Key: filepath.Join(dir, "n4.key")})
		if err != nil || n4.Identity.Name != "n4" {
			t.Fatalf("n4: %v", err)
		}
	})
	after, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !bytes.Equal(before, after) {
		t.Fatal("ca.crt changed")
	}
}

func TestClusterInitBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no nodes", []string{"--out", "x"}, "at least one of the flags in the group [nodes add-node renew] is required"},
		{"no out", []string{"--nodes", "n1"}, `required flag(s) "out" not set`},
		{"duplicate node", []string{"--nodes", "n1,n1", "--out", "x"}, `"n1" given twice`},
		{"bad node id", []string{"--nodes", "n1,N_2", "--out", "x"}, `"N_2"`},
		{"hosts without =", []string{"--nodes", "n1", "--hosts", "n1", "--out", "x"}, "want ID=NAME"},
		{"hosts with an empty name", []string{"--nodes", "n1", "--hosts", "n1=a,,b", "--out", "x"}, "empty name"},
		{"hosts of no node", []string{"--nodes", "n1", "--hosts", "n2=a", "--out", "x"}, `hosts for "n2"`},
		{"add-node with hosts of another", []string{"--add-node", "n4", "--hosts", "n5=a", "--out", "x"}, "not the node being added"},
		{"nodes and add-node", []string{"--nodes", "n1", "--add-node", "n2", "--out", "x"}, "none of the others can be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"cluster", "init"}, tt.args...)
			for i, a := range args {
				if a == "x" {
					args[i] = filepath.Join(dir, "certs")
				}
			}
			_, err := execute(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "certs")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("certs created: %v", err)
			}
		})
	}
}

func TestClusterInitRenew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := execute(t, "cluster", "init", "--nodes", "n1,n2", "--hosts", "n1=gw1.example.org", "--out", dir); err != nil {
		t.Fatal(err)
	}
	l := &pki.Layout{Dir: dir, Nodes: []string{"n1", "n2"}}
	oldCert, _ := os.ReadFile(l.Node("n1").Cert)

	out, err := execute(t, "cluster", "init", "--renew", "n1", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node/n1 renewed", "n1.crt.old", "n1.key.old", "restart node n1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if kept, _ := os.ReadFile(l.Node("n1").Cert + ".old"); !bytes.Equal(kept, oldCert) {
		t.Error("n1.crt.old is not the old certificate")
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}

	out, err = execute(t, "cluster", "init", "--renew", "admin", "--days", "30", "--out", dir)
	if err != nil || !strings.Contains(out, "admin/admin renewed") || !strings.Contains(out, "Nothing to restart") {
		t.Fatalf("renew admin: %v\n%s", err, out)
	}
	if a, err := pki.Load(l.Admin()); err != nil || a.Identity.Kind != pki.KindAdmin {
		t.Fatalf("admin: %v", err)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown node", []string{"--renew", "n9"}, "no node n9"},
		{"hosts of another node", []string{"--renew", "n1", "--hosts", "n2=a"}, "not the node being renewed"},
		{"admin with names", []string{"--renew", "admin", "--san", "a.example"}, "names no hosts"},
		{"renew and nodes", []string{"--renew", "n1", "--nodes", "n1"}, "none of the others can be"},
		{"renew and if-missing", []string{"--renew", "n1", "--if-missing"}, "none of the others can be"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := execute(t, append(append([]string{"cluster", "init"}, tt.args...), "--out", dir)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestClusterInitRenewNodeOwner renews a node as the compose init service
// would (as root, --node-owner): the node pair ends the node user's, the
// admin pair the directory owner's.
func TestClusterInitRenewNodeOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--node-owner needs root")
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1234, 1235); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(t, "cluster", "init", "--nodes", "node1,node2", "--out", dir, "--node-owner", "65532:65532"); err != nil {
		t.Fatal(err)
	}
	owner := func(path string) string {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	for _, id := range []string{"node1", "admin"} {
		out, err := execute(t, "cluster", "init", "--renew", id, "--out", dir, "--node-owner", "65532:65532")
		if err != nil || !strings.Contains(out, "owned by 65532:65532") {
			t.Fatalf("renew %s: %v\n%s", id, err, out)
		}
	}
	l := &pki.Layout{Dir: dir, Nodes: []string{"node1", "node2"}}
	for path, want := range map[string]string{
		l.Node("node1").Cert: "65532:65532", l.Node("node1").Key: "65532:65532",
		l.Admin().Cert: "1234:1235", l.Admin().Key: "1234:1235", l.CAKey(): "1234:1235",
	} {
		if got := owner(path); got != want {
			t.Errorf("%s owned by %s, want %s", path, got, want)
		}
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
}
