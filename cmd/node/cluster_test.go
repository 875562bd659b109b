package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
