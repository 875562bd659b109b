package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmux drives a terminal program in a detached session.
type tmux struct {
	t       *testing.T
	session string
	env     []string
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	cmd := exec.Command("tmux", args...)
	cmd.Env = m.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitScreen polls the pane until it shows want.
func (m *tmux) waitScreen(want string) string {
	m.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		screen := m.run("capture-pane", "-p", "-t", m.session)
		if strings.Contains(screen, want) {
			return screen
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("screen never showed %q:\n%s", want, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2EAmfora browses the zero-config node with amfora, a real Gemini
// client, driven through tmux: the welcome page, then a link followed.
func TestE2EAmfora(t *testing.T) {
	for _, bin := range []string{"amfora", "tmux"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: apt-get install amfora tmux", bin)
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	spawnNode(t, dir, "--listen", "127.0.0.1:"+strconv.Itoa(port))

	m := &tmux{t: t, session: "chimalli-e2e-" + strconv.Itoa(port), env: []string{
		"HOME=" + dir, "XDG_CONFIG_HOME=" + dir + "/xdg", "XDG_CACHE_HOME=" + dir + "/cache",
		"XDG_DATA_HOME=" + dir + "/data", "TERM=xterm-256color", "PATH=/usr/bin:/bin",
		"TMUX_TMPDIR=" + dir,
	}}
	m.run("new-session", "-d", "-s", m.session, "-x", "120", "-y", "40",
		fmt.Sprintf("amfora gemini://localhost:%d/", port))
	t.Cleanup(func() {
		// The session's own tmux server (TMUX_TMPDIR is the test's): stop it.
		kill := exec.Command("tmux", "kill-server")
		kill.Env = m.env
		kill.Run()
	})

	m.waitScreen("# Chimalli")
	// Follow link 1 (the page about the layers): amfora takes a link number
	// after Space.
	m.run("send-keys", "-t", m.session, "Space")
	m.run("send-keys", "-t", m.session, "1", "Enter")
	m.waitScreen("How Chimalli checks each request")
}
