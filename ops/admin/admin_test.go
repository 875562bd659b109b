package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/config"
	"github.com/chimalli/chimalli/ops/testlog"
)

// shortDir returns a fresh directory with a short path: unix socket paths
// must stay under 108 bytes, and t.TempDir paths can be long.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ops")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// testCtx returns a context bounded so that a hung test fails instead of
// hanging.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openAdmin opens an Admin on path and closes it at cleanup.
func openAdmin(t *testing.T, path string, ready func() error) *Admin {
	t.Helper()
	a := NewAdmin(path, ready, testlog.New(t))
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// send makes one raw request over the socket at path and returns the
// status and the decoded JSON body (a listing's array is left undecoded),
// so that tests see what any HTTP client sees. Every answer must be JSON.
func send(t *testing.T, path, method, target, body string) (int, statusBody) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	defer tr.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://admin"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, target, ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sb statusBody
	if resp.StatusCode/100 != 2 || !bytes.HasPrefix(b, []byte("[")) {
		if err := json.Unmarshal(b, &sb); err != nil {
			t.Fatalf("%s %s: %d, body is not JSON: %v: %s", method, target, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode, sb
}

// staleSocket leaves a socket file at path that nobody listens on, as a
// killed node would.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not left behind: %v", err)
	}
}

func TestAdminSocketMode(t *testing.T) {
	path := filepath.Join(shortDir(t), "run", "admin.sock")
	openAdmin(t, path, nil)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	dir, err := os.Lstat(filepath.Dir(path))
	if err != nil || dir.Mode().Perm() != 0o700 {
		t.Errorf("created socket directory mode = %v, %v; want 0700", dir.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket (temporary directory left behind?)", len(entries))
	}
}

func TestAdminHealthAndReady(t *testing.T) {
	path := filepath.Join(shortDir(t), "admin.sock")
	var notReady atomic.Pointer[error]
	starting := errors.New("raft: no leader yet")
	notReady.Store(&starting)
	openAdmin(t, path, func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	})

	tests := []struct {
		name, method, target string
		ready                bool
		wantCode             int
		want                 statusBody
	}{
		{"healthz while starting", "GET", "/healthz", false, 200, statusBody{Status: "ok"}},
		{"readyz while starting", "GET", "/readyz", false, 503, statusBody{Status: "unavailable", Error: "raft: no leader yet"}},
		{"healthz when ready", "GET", "/healthz", true, 200, statusBody{Status: "ok"}},
		{"readyz when ready", "GET", "/readyz", true, 200, statusBody{Status: "ok"}},
		{"unknown path", "GET", "/nope", true, 404, statusBody{Status: "not_found", Error: "no such endpoint"}},
		{"wrong method", "POST", "/healthz", true, 405, statusBody{Status: "method_not_allowed", Error: "POST is not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ready {
				notReady.Store(nil)
			} else {
				notReady.Store(&starting)
			}
			code, body := send(t, path, tt.method, tt.target, "")
			if code != tt.wantCode || body != tt.want {
				t.Errorf("%s %s = %d %+v, want %d %+v", tt.method, tt.target, code, body, tt.wantCode, tt.want)
			}
			err := CheckHealth(testCtx(t), path)
			if tt.ready && err != nil {
				t.Errorf("CheckHealth = %v, want nil", err)
			}
			if !tt.ready && (!errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "raft: no leader yet")) {
				t.Errorf("CheckHealth = %v, want ErrNotReady with the reason", err)
			}
		})
	}
}

func TestAdminNilReadyIsReady(t *testing.T) {
	path := filepath.Join(shortDir(t), "a.sock")
	openAdmin(t, path, nil)
	if err := CheckHealth(testCtx(t), path); err != nil {
		t.Errorf("CheckHealth = %v", err)
	}
}

func TestAdminHandle(t *testing.T) {
	path := filepath.Join(shortDir(t), "a.sock")
	a := NewAdmin(path, nil, testlog.New(t))
	a.Handle("GET /v1/bans", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, statusBody{Status: "bans"})
	}))
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if code, body := send(t, path, "GET", "/v1/bans", ""); code != 200 || body.Status != "bans" {
		t.Errorf("extension handler = %d %+v", code, body)
	}
}

func TestAdminCloseRemovesSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "a.sock")
	a := NewAdmin(path, nil, testlog.New(t))
	if err := a.Close(testCtx(t)); err != nil {
		t.Errorf("Close before Open = %v", err)
	}
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.Open(testCtx(t)); !errors.Is(err, ErrAdminOpen) {
		t.Errorf("second Open = %v, want ErrAdminOpen", err)
	}
	if err := a.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still present after Close: %v", err)
	}
	if err := a.Close(testCtx(t)); err != nil {
		t.Errorf("second Close = %v", err)
	}
	err := CheckHealth(testCtx(t), path)
	if !errors.Is(err, ErrNoNode) {
		t.Errorf("CheckHealth after Close = %v, want ErrNoNode", err)
	}
	// An Admin can be opened again after Close.
	if err := a.Open(testCtx(t)); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer a.Close(context.Background())
	if err := CheckHealth(testCtx(t), path); err != nil {
		t.Errorf("CheckHealth after reopen = %v", err)
	}
}

func TestAdminReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "admin.sock")
	staleSocket(t, path)
	openAdmin(t, path, nil)
	if err := CheckHealth(testCtx(t), path); err != nil {
		t.Errorf("CheckHealth after replacing the stale socket = %v", err)
	}
}

func TestAdminRefusesLiveSocket(t *testing.T) {
	tests := []struct {
		name  string
		owner func(t *testing.T, path string)
	}{
		{"another admin", func(t *testing.T, path string) { openAdmin(t, path, nil) }},
		{"another process", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}},
		{"a regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortDir(t), "admin.sock")
			tt.owner(t, path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			a := NewAdmin(path, nil, testlog.New(t))
			if err := a.Open(testCtx(t)); !errors.Is(err, ErrSocketInUse) {
				a.Close(context.Background())
				t.Fatalf("Open = %v, want ErrSocketInUse", err)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("the owner's file was replaced or removed: %v", err)
			}
			if err := a.Close(testCtx(t)); err != nil {
				t.Errorf("Close after failed Open = %v", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("Close after failed Open removed the owner's file: %v", err)
			}
		})
	}
}

// TestAdminLongPath covers the fallback for a socket path so long that the
// temporary bind path would not fit: the socket must still end up 0600.
func TestAdminLongPath(t *testing.T) {
	base := shortDir(t)
	dir := filepath.Join(base, strings.Repeat("d", config.MaxSocketPath-len(base)-3))
	path := filepath.Join(dir, "a")
	if len(path) != config.MaxSocketPath {
		t.Fatalf("test path is %d bytes, want %d", len(path), config.MaxSocketPath)
	}
	openAdmin(t, path, nil)
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if err := CheckHealth(testCtx(t), path); err != nil {
		t.Errorf("CheckHealth = %v", err)
	}
}

func TestCheckHealthNoNode(t *testing.T) {
	dir := shortDir(t)
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	for name, path := range map[string]string{
		"missing socket": filepath.Join(dir, "none.sock"),
		"stale socket":   stale,
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckHealth(testCtx(t), path)
			if !errors.Is(err, ErrNoNode) {
				t.Fatalf("CheckHealth = %v, want ErrNoNode", err)
			}
			if want := "no node is listening on " + path; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}

func TestCheckHealthUnexpectedStatus(t *testing.T) {
	path := filepath.Join(shortDir(t), "a.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusTeapot, statusBody{Status: "teapot", Error: "short and stout"})
	})}
	go srv.Serve(ln)
	defer srv.Close()
	err = CheckHealth(testCtx(t), path)
	if err == nil || errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "418") || !strings.Contains(err.Error(), "short and stout") {
		t.Errorf("CheckHealth = %v, want an unexpected-status error with the reason", err)
	}
}

func BenchmarkCheckHealth(b *testing.B) {
	d, err := os.MkdirTemp("", "ops")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(d)
	path := filepath.Join(d, "a.sock")
	a := NewAdmin(path, nil, nil)
	if err := a.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer a.Close(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckHealth(context.Background(), path); err != nil {
			b.Fatal(err)
		}
	}
}
