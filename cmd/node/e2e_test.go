package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// These end-to-end tests run the real chimalli binary as a user would. Set
// E2E_CHIMALLI_BIN to test a prebuilt binary (make e2e); otherwise TestMain
// builds one.
var chimalliBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	chimalliBin = os.Getenv("E2E_CHIMALLI_BIN")
	if chimalliBin == "" {
		dir, err := os.MkdirTemp("", "chimalli-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		chimalliBin = filepath.Join(dir, "chimalli")
		out, err := exec.Command("go", "build", "-o", chimalliBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build chimalli: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// hermeticEnv is the environment of the processes under test: the
// caller's, without CHIMALLI_* variables, which would configure them.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHIMALLI_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer is a bytes.Buffer that a test may read while the child
// process still writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nodeProc is a running `chimalli run`.
type nodeProc struct {
	addr   string
	banner string
	stderr *syncBuffer
	cmd    *exec.Cmd
	exited chan error
	done   bool
}

var servingRE = regexp.MustCompile(`serving gemini on (\S+)`)

// spawnNode runs `chimalli run args...` in dir, waits for its banner, and
// stops it (SIGINT) when the test ends.
func spawnNode(t *testing.T, dir string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(chimalliBin, append([]string{"run"}, args...)...)
	cmd.Dir = dir
	cmd.Env = hermeticEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{stderr: &syncBuffer{}, cmd: cmd, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	var banner strings.Builder
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("node exited before serving:\n%s\n%s", banner.String(), p.stderr)
			}
			banner.WriteString(l + "\n")
			if m := servingRE.FindStringSubmatch(l); m != nil {
				p.addr = m[1]
			}
			if strings.HasPrefix(l, "admin socket:") {
				p.banner = banner.String()
				go func() { // keep draining stdout
					for range lines {
					}
				}()
				return p
			}
		case <-deadline:
			t.Fatalf("no banner after 30s:\n%s\n%s", banner.String(), p.stderr)
		}
	}
}

// stop interrupts the node and waits for a clean exit. The node's log
// (its stderr) then goes to t.Log, shown when the test fails or with -v.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	if p.done {
		return
	}
	p.done = true
	defer func() { t.Logf("node log:\n%s", p.stderr) }()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("node exit: %v\n%s", err, p.stderr)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Error("node did not stop on SIGINT")
	}
}

// chimalli runs a chimalli subcommand and returns stdout, stderr and the exit code.
func chimalli(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chimalliBin, args...)
	cmd.Dir = dir
	cmd.Env = hermeticEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("chimalli %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestE2EZeroConfigRunAndGet(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	n := spawnNode(t, dir, "--listen", listen)
	if n.addr != listen {
		t.Fatalf("banner address %q, want %q", n.addr, listen)
	}
	if !regexp.MustCompile(`sha256:[0-9a-f]{64}`).MatchString(n.banner) {
		t.Fatalf("banner lacks the certificate fingerprint:\n%s", n.banner)
	}
	kh := filepath.Join(dir, "known_hosts")
	url := fmt.Sprintf("gemini://localhost:%d/", port)
	out, errOut, code := chimalli(t, dir, "get", "--known-hosts", kh, url)
	if code != 0 || !strings.Contains(out, "# Chimalli") {
		t.Fatalf("get: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "trusting sha256:") {
		t.Errorf("first use not reported: %q", errOut)
	}
	// Again: the pin matches, nothing to report.
	out, errOut, code = chimalli(t, dir, "get", "--known-hosts", kh, url+"about.gmi")
	if code != 0 || out == "" || strings.Contains(errOut, "trusting") {
		t.Fatalf("second get: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, _, code := chimalli(t, dir, "get", "--known-hosts", kh, url+"missing"); code != 1 {
		t.Fatalf("missing page: exit code %d, want 1", code)
	}
	// The generated key is kept: the data dir holds it with mode 0600.
	st, err := os.Stat(filepath.Join(dir, "chimalli-data", "certs", "localhost.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	// Health over the admin socket, run from the same directory.
	if out, errOut, code := chimalli(t, dir, "health"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("health: code %d %q %q", code, out, errOut)
	}
}

func TestE2EChangedServerKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	kh := filepath.Join(dir, "known_hosts")
	url := fmt.Sprintf("gemini://localhost:%d/", port)

	first := filepath.Join(dir, "a")
	os.Mkdir(first, 0o700)
	n1 := spawnNode(t, first, "--listen", listen)
	if _, errOut, code := chimalli(t, dir, "get", "--known-hosts", kh, url); code != 0 {
		t.Fatalf("first get: %d %s", code, errOut)
	}
	n1.stop(t)

	second := filepath.Join(dir, "b") // a fresh data dir: a new key
	os.Mkdir(second, 0o700)
	spawnNode(t, second, "--listen", listen)
	_, errOut, code := chimalli(t, dir, "get", "--known-hosts", kh, url)
	if code != 3 {
		t.Fatalf("changed key: exit %d, want 3\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "changed") || !strings.Contains(errOut, kh) {
		t.Fatalf("error does not explain the change and the file: %q", errOut)
	}
}

func TestE2ECertNew(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := chimalli(t, dir, "cert", "new", "--cn", "alice", "--days", "7", "--out", "ids")
	if code != 0 {
		t.Fatalf("cert new: %d %s", code, errOut)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ids", "alice.crt"), filepath.Join(dir, "ids", "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	fp := tofu.CertFingerprint(pair.Certificate[0]).String()
	if !strings.Contains(out, fp) {
		t.Fatalf("output lacks fingerprint %s:\n%s", fp, out)
	}
	st, _ := os.Stat(filepath.Join(dir, "ids", "alice.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	if _, _, code := chimalli(t, dir, "cert", "new", "--cn", "alice", "--out", "ids"); code == 0 {
		t.Fatal("cert new overwrote existing files without --force")
	}
}

func TestE2EVersionAndBadConfig(t *testing.T) {
	dir := t.TempDir()
	out, _, code := chimalli(t, dir, "version")
	if code != 0 || !strings.HasPrefix(out, "chimalli ") {
		t.Fatalf("version: %d %q", code, out)
	}
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte("gateway:\n  hosts:\n    - name: example.org\n      routes:\n        - {prefix: admin/, docroot: .}\n"), 0o600)
	_, errOut, code := chimalli(t, dir, "run", "--config", cfg)
	if code == 0 || !strings.Contains(errOut, "gateway.hosts[0].routes[0].prefix") {
		t.Fatalf("bad config: exit %d, stderr %q", code, errOut)
	}
}

// TestE2ESIGHUPReloadsCertificate replaces the node's certificate files
// and signals SIGHUP: new connections get the new certificate at once.
func TestE2ESIGHUPReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	n := spawnNode(t, dir, "--listen", listen)
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", listen, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return tofu.CertFingerprint(c.ConnectionState().PeerCertificates[0].Raw).String()
	}
	before := served()
	out, errOut, code := chimalli(t, dir, "cert", "new", "--cn", "localhost", "--dns", "localhost",
		"--out", filepath.Join("chimalli-data", "certs"), "--force")
	if code != 0 {
		t.Fatalf("cert new: %s", errOut)
	}
	want := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(out)
	if want == "" || want == before {
		t.Fatalf("new fingerprint %q (before %q)", want, before)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for served() != want {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s after SIGHUP, want %s", served(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
