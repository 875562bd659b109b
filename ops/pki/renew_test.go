package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshot reads the files of one identity.
func snapshot(t *testing.T, f Files) (cert, key []byte) {
	t.Helper()
	cert, err := os.ReadFile(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	key, err = os.ReadFile(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// leafOf returns the certificate of loaded credentials.
func leafOf(t *testing.T, c *Credentials) *x509.Certificate {
	t.Helper()
	leaf := c.cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.cert.Certificate[0]); err != nil {
			t.Fatal(err)
		}
	}
	return leaf
}

// fileEquals fails unless path holds want and has mode perm.
func fileEquals(t *testing.T, path string, want []byte, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: not the expected content", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != perm {
		t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), perm)
	}
}

func TestRenewNode(t *testing.T) {
	l, err := Init(t.TempDir()+"/certs", InitOptions{
		Nodes: []string{"n1", "n2"},
		Hosts: map[string][]string{"n1": {"gw1.example.org", "192.0.2.1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	oldCert, oldKey := snapshot(t, l.Node("n1"))
	old := leafOf(t, mustLoad(t, l.Node("n1")))
	caBefore, _ := os.ReadFile(l.CACert())

	r, err := Renew(l.Dir, "n1", RenewOptions{CertDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity != (Identity{KindNode, "n1"}) || r.Files != l.Node("n1") {
		t.Fatalf("Renewed %+v", r)
	}
	n1 := mustLoad(t, l.Node("n1"))
	leaf := leafOf(t, n1)
	if n1.Identity != (Identity{KindNode, "n1"}) {
		t.Fatalf("identity %s", n1.Identity)
	}
	if !slices.Equal(leaf.DNSNames, old.DNSNames) || !slices.EqualFunc(leaf.IPAddresses, old.IPAddresses, net.IP.Equal) {
		t.Errorf("names %v %v, want the old %v %v", leaf.DNSNames, leaf.IPAddresses, old.DNSNames, old.IPAddresses)
	}
	if leaf.SerialNumber.Cmp(old.SerialNumber) == 0 || bytes.Equal(leaf.RawSubjectPublicKeyInfo, old.RawSubjectPublicKeyInfo) {
		t.Error("the renewed certificate has the old serial or the old key")
	}
	if d := leaf.NotAfter.Sub(time.Now()); d > 31*24*time.Hour || d < 29*24*time.Hour || !leaf.NotAfter.Equal(r.NotAfter) {
		t.Errorf("NotAfter %v (reported %v), want 30 days from now", leaf.NotAfter, r.NotAfter)
	}
	newCert, newKey := snapshot(t, l.Node("n1"))
	fileEquals(t, l.Node("n1").Cert, newCert, 0o644)
	fileEquals(t, l.Node("n1").Key, newKey, 0o600)
	if r.OldCert != l.Node("n1").Cert+".old" || r.OldKey != l.Node("n1").Key+".old" {
		t.Errorf("old files reported as %s, %s", r.OldCert, r.OldKey)
	}
	fileEquals(t, r.OldCert, oldCert, 0o644)
	fileEquals(t, r.OldKey, oldKey, 0o600)
	if after, _ := os.ReadFile(l.CACert()); !bytes.Equal(after, caBefore) {
		t.Error("ca.crt changed")
	}
	want := []string{"admin.crt", "admin.key", "ca.crt", "ca.key", "n1.crt", "n1.crt.old", "n1.key", "n1.key.old", "n2.crt", "n2.key"}
	if got := dirNames(t, l.Dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v (no staging left)", got, want)
	}
	if got, err := Open(l.Dir); err != nil || !slices.Equal(got.Nodes, []string{"n1", "n2"}) {
		t.Errorf("Open sees %v, %v: .old files are not nodes", got, err)
	}
	if err := (&Layout{Dir: l.Dir, Nodes: []string{"n1", "n2"}}).Check(); err != nil {
		t.Errorf("Check: %v", err)
	}

	// n2 kept its certificate and the authority: both ends accept the
	// renewed n1.
	n2 := mustLoad(t, l.Node("n2"))
	for _, tt := range []struct {
		name     string
		srv, cli *Credentials
		server   string
		wantPeer Identity
	}{
		{"renewed n1 calls n2", n2, n1, "n2", Identity{KindNode, "n1"}},
		{"n2 calls renewed n1", n1, n2, "n1", Identity{KindNode, "n2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := tt.srv.ServerConfig(KindNode)
			if err != nil {
				t.Fatal(err)
			}
			s, c := handshake(t, srv, tt.cli.ClientConfig(tt.server), "127.0.0.1")
			if s.err != nil || c.err != nil || s.peer != tt.wantPeer {
				t.Fatalf("server %s %v; client %v", s.peer, s.err, c.err)
			}
		})
	}

	t.Run("again replaces the .old pair", func(t *testing.T) {
		if _, err := Renew(l.Dir, "n1", RenewOptions{}); err != nil {
			t.Fatal(err)
		}
		fileEquals(t, r.OldCert, newCert, 0o644)
		fileEquals(t, r.OldKey, newKey, 0o600)
		mustLoad(t, l.Node("n1"))
	})
}

func TestRenewAdmin(t *testing.T) {
	l := newCluster(t, "n1")
	oldCert, oldKey := snapshot(t, l.Admin())
	r, err := Renew(l.Dir, AdminName, RenewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := mustLoad(t, l.Admin())
	leaf := leafOf(t, a)
	if a.Identity != (Identity{KindAdmin, AdminName}) || r.Identity != a.Identity {
		t.Fatalf("identity %s, reported %s", a.Identity, r.Identity)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 || slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("admin certificate names %v %v, usages %v: want a client-only certificate", leaf.DNSNames, leaf.IPAddresses, leaf.ExtKeyUsage)
	}
	fileEquals(t, l.Admin().Cert+".old", oldCert, 0o644)
	fileEquals(t, l.Admin().Key+".old", oldKey, 0o600)
	srv, err := mustLoad(t, l.Node("n1")).ServerConfig(KindAdmin)
	if err != nil {
		t.Fatal(err)
	}
	s, c := handshake(t, srv, a.ClientConfig("n1"), "127.0.0.1")
	if s.err != nil || c.err != nil || s.peer != a.Identity {
		t.Fatalf("admin to n1: server %s %v; client %v", s.peer, s.err, c.err)
	}
	if _, err := Renew(l.Dir, AdminName, RenewOptions{Hosts: []string{"h.example"}}); err == nil || !strings.Contains(err.Error(), "names no hosts") {
		t.Errorf("Renew admin with hosts: %v", err)
	}
}

func TestRenewWithNewNames(t *testing.T) {
	l := newCluster(t, "n1", "n2")
	if _, err := Renew(l.Dir, "n1", RenewOptions{Hosts: []string{"n1.example.org", "10.0.0.1"}, NoLoopback: true}); err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, mustLoad(t, l.Node("n1")))
	if !slices.Equal(leaf.DNSNames, []string{"n1", "n1.example.org"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("names %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if _, err := Renew(l.Dir, "n1", RenewOptions{Hosts: []string{"n2"}}); err == nil || !strings.Contains(err.Error(), "another node's id") {
		t.Errorf("Renew with another node's id as host: %v", err)
	}
}

func TestRenewExpiredAndLostKey(t *testing.T) {
	l, err := Init(t.TempDir()+"/certs", InitOptions{Nodes: []string{"n1"}, CertDays: 1, Now: time.Now().AddDate(0, 0, -3)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(l.Node("n1")); err == nil {
		t.Fatal("the old certificate loads: it should have expired")
	}
	if err := os.Remove(l.Node("n1").Key); err != nil {
		t.Fatal(err)
	}
	r, err := Renew(l.Dir, "n1", RenewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustLoad(t, l.Node("n1"))
	if r.OldKey != "" {
		t.Errorf("OldKey %q with no old key", r.OldKey)
	}
	if _, err := os.Lstat(l.Node("n1").Key + ".old"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("n1.key.old: %v", err)
	}
}

func TestRenewRefuses(t *testing.T) {
	l := newCluster(t, "n1", "n2")
	other := newCluster(t, "n1")
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, id string
		setup    func(dir string)
		want     string
	}{
		{"unknown node", "n9", nil, "no node n9"},
		{"bad id", "N1", nil, "use only a-z"},
		{"the authority", "ca", nil, "reserved"},
		{"no ca.key", "n1", func(dir string) { _ = os.Remove(filepath.Join(dir, CAKeyFile)) }, CAKeyFile},
		{"a certificate of another authority", "n1", func(dir string) {
			copyFile(other.Node("n1").Cert, filepath.Join(dir, "n1.crt"))
			copyFile(other.Node("n1").Key, filepath.Join(dir, "n1.key"))
		}, "not signed by the authority"},
		{"a certificate naming another node", "n1", func(dir string) {
			copyFile(filepath.Join(dir, "n2.crt"), filepath.Join(dir, "n1.crt"))
		}, "names node/n2, not node/n1"},
		{"the admin's certificate naming a node", AdminName, func(dir string) {
			copyFile(filepath.Join(dir, "n2.crt"), filepath.Join(dir, AdminCertFile))
		}, "names node/n2, not admin/admin"},
		{"no admin certificate", AdminName, func(dir string) { _ = os.Remove(filepath.Join(dir, AdminCertFile)) }, AdminCertFile},
		{"no cluster", "n1", func(dir string) { _ = os.Remove(filepath.Join(dir, CACertFile)) }, CACertFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if err := os.CopyFS(dir, os.DirFS(l.Dir)); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(dir)
			}
			before := dirNames(t, dir)
			contents := map[string][]byte{}
			for _, n := range before {
				contents[n], _ = os.ReadFile(filepath.Join(dir, n))
			}
			_, err := Renew(dir, tt.id, RenewOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Renew: %v, want an error containing %q", err, tt.want)
			}
			t.Log(err)
			if after := dirNames(t, dir); !slices.Equal(after, before) {
				t.Errorf("directory holds %v, had %v", after, before)
			}
			for n, want := range contents {
				if got, _ := os.ReadFile(filepath.Join(dir, n)); !bytes.Equal(got, want) {
					t.Errorf("%s changed", n)
				}
			}
		})
	}
}

// TestRenewFailureKeepsAMatchingPair makes each move of a renewal fail in
// turn: the node's certificate and key always still belong together (the
// old pair), and no staging directory is left.
func TestRenewFailureKeepsAMatchingPair(t *testing.T) {
	const moves = 4 // key.old, crt.old, the new key, the new certificate
	for fail := 1; fail <= moves+1; fail++ {
		l := newCluster(t, "n1")
		oldCert, oldKey := snapshot(t, l.Node("n1"))
		calls := 0
		ops := fileOps{rename: func(from, to string) error {
			calls++
			if calls == fail {
				return errInjected
			}
			return os.Rename(from, to)
		}}
		_, err := renewIn(l.Dir, "n1", RenewOptions{}, ops)
		if fail > moves {
			if err != nil || calls != moves {
				t.Fatalf("renewal with no failure: %v after %d moves, want %d", err, calls, moves)
			}
			continue
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("move %d fails: %v, want the injected failure", fail, err)
		}
		fileEquals(t, l.Node("n1").Cert, oldCert, 0o644)
		fileEquals(t, l.Node("n1").Key, oldKey, 0o600)
		mustLoad(t, l.Node("n1"))
		for _, n := range dirNames(t, l.Dir) {
			if strings.HasPrefix(n, ".") {
				t.Errorf("move %d fails: %s left behind", fail, n)
			}
		}
	}
}

// TestRenewKeepsOwners renews in a directory granted to a node user, as the
// compose init service does: the renewed node pair stays the node user's,
// the admin pair the directory owner's. It needs root (CAP_CHOWN).
func TestRenewKeepsOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keeper, node := Owner{UID: 1234, GID: 1235}, Owner{UID: 65532, GID: 65533}
	if err := os.Chown(dir, keeper.UID, keeper.GID); err != nil {
		t.Fatal(err)
	}
	l, err := Init(dir, InitOptions{Nodes: []string{"n1", "n2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.GrantNodes(node); err != nil {
		t.Fatal(err)
	}
	owner := func(path string) Owner {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return Owner{int(st.Uid), int(st.Gid)}
	}
	for _, tt := range []struct {
		name string
		want Owner
		f    Files
	}{{"n1", node, l.Node("n1")}, {AdminName, keeper, l.Admin()}} {
		if _, err := Renew(dir, tt.name, RenewOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{tt.f.Cert, tt.f.Key, tt.f.Cert + ".old", tt.f.Key + ".old"} {
			if o := owner(p); o != tt.want {
				t.Errorf("%s owned by %v, want %v", p, o, tt.want)
			}
		}
		fi, _ := os.Stat(tt.f.Key)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", tt.f.Key, fi.Mode())
		}
	}
	// What the CLI does after renewing with --node-owner: idempotent.
	if err := (&Layout{Dir: dir, Nodes: []string{"n1"}}).GrantNodes(node); err != nil {
		t.Fatal(err)
	}
	if o := owner(l.Node("n1").Key); o != node {
		t.Errorf("n1.key owned by %v after GrantNodes", o)
	}
	if o := owner(l.Admin().Key); o != keeper {
		t.Errorf("admin.key owned by %v after GrantNodes", o)
	}
	if err := (&Layout{Dir: dir, Nodes: []string{"n1", "n2"}}).Check(); err != nil {
		t.Fatal(err)
	}
}
