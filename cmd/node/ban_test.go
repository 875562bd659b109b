package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
)

// execute runs the chimalli command line in-process with args and returns
// its output and error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	t.Logf("chimalli %s: %v\n%s", strings.Join(args, " "), err, out.String())
	return out.String(), err
}

// The admin commands offer only the flags that mean something to them: the
// node's own (--listen, --log-level, --log-format) belong to run.
func TestAdminCommandsOfferOnlyTheirFlags(t *testing.T) {
	runOnly := []string{"--listen", "--log-level", "--log-format"}
	for _, path := range [][]string{{"ban", "add"}, {"ban", "ls"}, {"ban", "rm"}, {"health"}} {
		name := strings.Join(path, " ")
		t.Run(name, func(t *testing.T) {
			help, err := execute(t, append(path, "--help")...)
			if err != nil {
				t.Fatalf("%s --help: %v", name, err)
			}
			for _, f := range runOnly {
				if strings.Contains(help, f) {
					t.Errorf("%s --help lists %s:\n%s", name, f, help)
				}
			}
			for _, f := range []string{"--socket", "--config", "--data-dir", "--timeout"} {
				if !strings.Contains(help, f) {
					t.Errorf("%s --help lacks %s:\n%s", name, f, help)
				}
			}
			args := append(path, "--listen", "127.0.0.1:1")
			if len(path) == 2 && path[1] != "ls" {
				args = append(args, "192.0.2.7")
			}
			if _, err := execute(t, args...); err == nil || !strings.Contains(err.Error(), "unknown flag: --listen") {
				t.Errorf("%s --listen = %v, want an unknown flag error", name, err)
			}
		})
	}
	help, err := execute(t, "run", "--help")
	if err != nil || !strings.Contains(help, "--listen") || !strings.Contains(help, "--log-format") {
		t.Fatalf("run --help lacks the node's flags (%v):\n%s", err, help)
	}
}

// `ban add` refuses what would make a ban permanent by accident, lock
// everyone out, or carry a reason the node cannot keep, before it looks
// for a node (the node applies the same rule).
func TestBanAddGuardRails(t *testing.T) {
	noNode := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"negative", []string{"192.0.2.7", "--for", "-5m"}, "duration: must be positive, got -5m0s"},
		{"zero", []string{"192.0.2.7", "--for", "0s"}, "duration: must be positive, got 0s"},
		{"no unit", []string{"192.0.2.7", "--for", "90"}, `duration: "90" is neither a duration`},
		{"everything v4", []string{"0.0.0.0/0"}, "0.0.0.0/0 is wider than /16"},
		{"everything v6", []string{"::/0", "--for", "1h"}, "(pass --force to ban it anyway)"},
		{"long reason", []string{"192.0.2.7", "--reason", strings.Repeat("x", 5000)}, "reason: 5000 bytes, at most 64"},
		{"bad reason", []string{"192.0.2.7", "--reason", "Port Scan"}, `reason: "Port Scan" is not a token of [a-z0-9_.-]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := execute(t, append([]string{"ban", "add", "--socket", noNode}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ban add %.60q = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 100)) {
				t.Fatalf("the error echoes the whole reason")
			}
		})
	}
	// What passes the rule goes on to the node (here: none).
	for _, args := range [][]string{{"0.0.0.0/0", "--force", "--for", "1m"}, {"192.0.2.7", "--for", "permanent"}, {"192.0.2.7"}} {
		if _, err := execute(t, append([]string{"ban", "add", "--socket", noNode}, args...)...); err == nil || !strings.Contains(err.Error(), "no node") {
			t.Fatalf("ban add %q = %v, want the node to be asked", args, err)
		}
	}
}

// A permanent ban lists as permanent, not as something already lifted.
func TestPrintBansPermanent(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	until := now.Add(time.Hour)
	var out bytes.Buffer
	printBans(&out, []admin.BanEntry{
		{Prefix: "192.0.2.7/32", Since: now, Permanent: true, Reason: "operator", Source: "operator", Strikes: 1},
		{Prefix: "192.0.2.8/32", Since: now, Until: &until, Reason: "rate_limit", Source: "auto", Strikes: 2},
	}, now)
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "permanent") || strings.Contains(out.String(), "lifted") {
		t.Fatalf("printBans:\n%s", out.String())
	}
	if !strings.Contains(lines[2], "2025-01-01T01:00:00Z") || !strings.Contains(lines[2], "1h0m0s") {
		t.Fatalf("printBans, timed ban:\n%s", out.String())
	}
}
