package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/raftstore"
)

func TestSnapshotCommands(t *testing.T) {
	sock, n := openCLINode(t)
	cli(t, sock, "ban", "add", "192.0.2.7", "--for", "1h")
	cli(t, sock, "rule", "deny", "add", "198.51.100.0/24")
	saved := n.Status()

	dir := t.TempDir()
	file := filepath.Join(dir, "state.jsonl")
	out := cli(t, sock, "cluster", "snapshot", "save", file)
	for _, want := range []string{"saved the state at index ", "from node n1 to " + file + " (0600)", "1 bans, 1 rules, 0 pins",
		"state hash " + saved.StateHash, "keep it secret"} {
		if !strings.Contains(out, want) {
			t.Fatalf("snapshot save lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v, %v; want mode 0600", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("save left other files behind: %v", entries)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := raftstore.VerifyBackup(bytes.NewReader(data)); err != nil || h.SHA256 != saved.StateHash {
		t.Fatalf("the saved file: %+v, %v", h, err)
	}

	// To standard output: the backup alone there, the summary on stderr.
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"cluster", "snapshot", "save", "-", "--socket", sock})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := raftstore.VerifyBackup(&stdout); err != nil || h.SHA256 != saved.StateHash || !strings.Contains(stderr.String(), "to standard output") {
		t.Fatalf("save -: %+v, %v; stderr %s", h, err, stderr.String())
	}

	cli(t, sock, "ban", "add", "192.0.2.8", "--for", "1h")
	moved := n.Status()

	// Without --force: the file is checked and described, nothing changes.
	out, err = execute(t, "cluster", "snapshot", "restore", file, "--socket", sock)
	if err == nil || !strings.Contains(err.Error(), "pass --force") || !strings.Contains(out, "backup  index "+strconv.FormatUint(saved.AppliedIndex, 10)) ||
		!strings.Contains(out, "replaces index "+strconv.FormatUint(moved.AppliedIndex, 10)+" on node n1: 2 bans, 1 rules, 0 pins") {
		t.Fatalf("restore without --force: %v\n%s", err, out)
	}
	// A corrupt file is refused before the node is asked.
	bad := filepath.Join(dir, "bad.jsonl")
	flipped := bytes.Clone(data)
	flipped[len(flipped)-4] ^= 0x01
	if err := os.WriteFile(bad, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	cliErr(t, sock, "checksum mismatch", "cluster", "snapshot", "restore", bad, "--force")
	cliErr(t, sock, "no such file", "cluster", "snapshot", "restore", filepath.Join(dir, "none"), "--force")
	if now := n.Status(); now.StateHash != moved.StateHash || now.AppliedIndex != moved.AppliedIndex {
		t.Fatalf("refused restores changed the state: %+v, was %+v", now, moved)
	}

	out = cli(t, sock, "cluster", "snapshot", "restore", file, "--force")
	if !strings.Contains(out, "restored through leader n1: the cluster's state is the backup's (index "+strconv.FormatUint(saved.AppliedIndex, 10)+", state hash "+saved.StateHash+")") {
		t.Fatalf("restore --force:\n%s", out)
	}
	if now := n.Status(); now.StateHash != saved.StateHash {
		t.Fatalf("state hash %s after the restore, want %s", now.StateHash, saved.StateHash)
	}
	if out := cli(t, sock, "ban", "ls"); strings.Contains(out, "192.0.2.8") || !strings.Contains(out, "192.0.2.7") {
		t.Fatalf("bans after the restore:\n%s", out)
	}
}
