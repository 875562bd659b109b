package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dockerfileDefaults reads the ENV, WORKDIR and CMD of ../../Dockerfile.
// ENV lines must be KEY=value pairs without quotes or spaces in values,
// and CMD the JSON (exec) form: anything else fails the test.
func dockerfileDefaults(t *testing.T) (env []string, workdir string, cmd []string) {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		instr, rest, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch strings.ToUpper(instr) {
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				if !strings.Contains(kv, "=") || strings.ContainsAny(kv, `"'\`) {
					t.Fatalf("Dockerfile: ENV %q: want KEY=value pairs", rest)
				}
				env = append(env, kv)
			}
		case "WORKDIR":
			workdir = strings.TrimSpace(rest)
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("Dockerfile: CMD %s: want the JSON form: %v", rest, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if workdir == "" || len(cmd) == 0 {
		t.Fatalf("Dockerfile: WORKDIR %q, CMD %q: want both", workdir, cmd)
	}
	return env, workdir, cmd
}

// TestE2EImageDefaults runs the binary as the image does, with the
// Dockerfile's environment alone (scratch has no HOME) and its CMD, /data
// standing for a temporary directory and the listen address for a free
// loopback port; then `health`, `ban ls` and `get` as `docker exec` runs
// them, without flags, must all work.
func TestE2EImageDefaults(t *testing.T) {
	env, workdir, cmd := dockerfileDefaults(t)
	env = append([]string{}, env...) // never nil: a nil Env inherits ours
	data := t.TempDir()
	mapData := func(s string) string {
		if s == "/data" || strings.HasPrefix(s, "/data/") {
			return data + strings.TrimPrefix(s, "/data")
		}
		if k, v, ok := strings.Cut(s, "="); ok {
			if v == "/data" || strings.HasPrefix(v, "/data/") {
				return k + "=" + data + strings.TrimPrefix(v, "/data")
			}
		}
		return s
	}
	for i := range env {
		env[i] = mapData(env[i])
	}
	workdir = mapData(workdir)
	if cmd[0] != "run" {
		t.Fatalf("Dockerfile CMD %q does not start with run", cmd)
	}
	port := freePort(t)
	args := []string{}
	for i := 1; i < len(cmd); i++ {
		if cmd[i] == "--listen" && i+1 < len(cmd) {
			args = append(args, "--listen", "127.0.0.1:"+strconv.Itoa(port))
			i++
			continue
		}
		args = append(args, mapData(cmd[i]))
	}

	node := exec.Command(chimalliBin, append([]string{"run"}, args...)...)
	node.Dir, node.Env = workdir, env
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	node.Stderr = stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{stderr: stderr, cmd: node, exited: make(chan error, 1)}
	go func() { p.exited <- node.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "admin socket:") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case err := <-p.exited:
		p.done = true
		t.Fatalf("node exited: %v\n%s", err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("no banner after 30s\n%s", stderr)
	}

	run := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, chimalliBin, args...)
		c.Dir, c.Env = workdir, env
		var out, errb strings.Builder
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("chimalli %v: %v", args, err)
		}
		return out.String(), errb.String(), code
	}
	if out, errOut, code := run("health"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Errorf("health: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := run("ban", "ls"); code != 0 || !strings.Contains(out, "no active bans") {
		t.Errorf("ban ls: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	url := fmt.Sprintf("gemini://localhost:%d/", port)
	if out, errOut, code := run("get", url); code != 0 || !strings.Contains(out, "# Chimalli") {
		t.Errorf("get %s: exit %d, stdout %q, stderr %q", url, code, out, errOut)
	}
}
