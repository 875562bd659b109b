package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// TestE2EStateSurvivesRestart: the zero-config node is a cluster of one
// whose Raft log is on disk, so a ban added before a restart (or a kill)
// is enforced after it, and a lifted one stays lifted.
func TestE2EStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := spawnNode(t, dir, "--listen", listen)
	for _, args := range [][]string{
		{"ban", "add", "127.0.0.31", "--for", "1h"},
		{"ban", "add", "127.0.0.32", "--for", "permanent"},
		{"ban", "add", "127.0.0.33", "--for", "1h"},
		{"ban", "rm", "127.0.0.33"},
	} {
		if out, errOut, code := chimalli(t, dir, args...); code != 0 {
			t.Fatalf("%q: %d %q %q", args, code, out, errOut)
		}
	}
	p.stop(t)

	p = spawnNode(t, dir, "--listen", listen)
	for addr, banned := range map[string]bool{"127.0.0.31": true, "127.0.0.32": true, "127.0.0.33": false} {
		line, err := fetchFrom(addr, p.addr, "/")
		if got := err != nil && isRefusal(err); got != banned {
			t.Errorf("after a restart, %s: %q, %v; banned = %v, want %v", addr, line, err, got, banned)
		}
	}
	// Killed without a clean shutdown: the log is still there.
	p.cmd.Process.Kill()
	<-p.exited
	p.done = true
	p = spawnNode(t, dir, "--listen", listen)
	if _, err := fetchFrom("127.0.0.31", p.addr, "/"); err == nil || !isRefusal(err) {
		t.Fatalf("after kill -9 and a restart, the ban is gone: %v", err)
	}
}

// TestE2EPinFileImportedOnce: a pins file from before the cluster is
// committed into the cluster's state at start and renamed, so its pins
// hold (and are listed) from then on.
func TestE2EPinFileImportedOnce(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "chimalli-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := tofu.OpenFileStore(filepath.Join(data, "pins"))
	if err != nil {
		t.Fatal(err)
	}
	var id tofu.Identity
	id.Cert[0], id.SPKI[0] = 7, 7
	pin := tofu.Pin{Key: tofu.PinKey{Kind: tofu.PinClient, Scope: "localhost/app/"}, Identity: id, Created: time.Now().UTC()}
	if _, err := store.Claim(context.Background(), pin); err != nil {
		t.Fatal(err)
	}
	spawnNode(t, dir, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(data, "pins.imported"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pins file was not imported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "pins")); !os.IsNotExist(err) {
		t.Fatalf("the pins file is still in place after its import: %v", err)
	}
	out, errOut, code := chimalli(t, dir, "trust", "ls")
	if code != 0 || !strings.Contains(out, "localhost/app/") {
		t.Fatalf("trust ls after the import: %d %q %q", code, out, errOut)
	}
}
