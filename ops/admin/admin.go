package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chimalli/chimalli/ops/config"
)

// ErrSocketInUse is returned by Admin.Open when another live process owns
// the admin socket path, or the path exists and is not a socket.
var ErrSocketInUse = errors.New("admin socket in use")

// ErrAdminOpen is returned by Admin.Open on an Admin that is already open.
var ErrAdminOpen = errors.New("admin server already open")

// Admin serves the admin API over a unix socket (mode 0600): GET /healthz
// and GET /readyz, and the operator endpoints the node registers: /bans
// (HandleBans), /rules (HandleRules), /trust and /trust/approve
// (HandleTrust), /cluster/status, /cluster/join and /cluster/leave
// (HandleCluster), /cluster/snapshot and /cluster/snapshot/restore
// (HandleSnapshots). Every response body is JSON (but a backup's:
// JSON lines):
// {"status":"ok"} on success, {"status":"…","error":"…"} otherwise.
//
// Create it with NewAdmin, add handlers with Handle, then Open and Close.
// Admin is safe for concurrent use once open.
type Admin struct {
	path   string
	ready  func() error
	logger *slog.Logger
	mux    *http.ServeMux

	mu   sync.Mutex
	srv  *http.Server
	info os.FileInfo // the socket file we created, to remove only ours
	done chan struct{}
}

// NewAdmin returns an unopened admin server for socketPath. ready reports
// readiness for /readyz (nil means always ready); logger may be nil.
func NewAdmin(socketPath string, ready func() error, logger *slog.Logger) *Admin {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Admin{path: socketPath, ready: ready, logger: logger, mux: http.NewServeMux()}
	a.mux.Handle("/healthz", methods{get: a.healthz})
	a.mux.Handle("/readyz", methods{get: a.readyz})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, statusBody{Status: "not_found", Error: "no such endpoint"})
	})
	return a
}

// Handle registers h for pattern (net/http ServeMux syntax) on the admin
// server. Call it before Open.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Path returns the socket path.
func (a *Admin) Path() string { return a.path }

// Open creates the socket and starts serving. A socket file left by a
// process that died is replaced; if a live process answers on it, Open
// returns ErrSocketInUse. ctx bounds the check of an existing socket.
func (a *Admin) Open(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return ErrAdminOpen
	}
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := removeStaleSocket(ctx, a.path); err != nil {
		return err
	}
	ln, info, err := listenPrivate(a.path)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("admin: serve", "err", err)
		}
	}()
	a.srv, a.info, a.done = srv, info, done
	return nil
}

// Close stops serving, waiting for in-flight requests until ctx ends, and
// removes the socket file. Closing an unopened Admin is a no-op.
func (a *Admin) Close(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv == nil {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	if err != nil {
		_ = a.srv.Close()
	}
	<-a.done
	if fi, serr := os.Lstat(a.path); serr == nil && os.SameFile(fi, a.info) {
		if rerr := os.Remove(a.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	a.srv, a.info, a.done = nil, nil, nil
	if err != nil {
		return fmt.Errorf("close admin server: %w", err)
	}
	return nil
}

// removeStaleSocket removes path if it is a socket nobody answers on. It
// returns ErrSocketInUse if a process answers or path is not a socket.
func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: %s exists and is not a socket", ErrSocketInUse, path)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "unix", path)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("%w: another process is listening on %s", ErrSocketInUse, path)
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale admin socket: %w", err)
		}
		return nil
	case errors.Is(err, syscall.ENOENT):
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrSocketInUse, path, err)
}

// listenPrivate listens on a unix socket at path with mode 0600, so that at
// no moment can another user connect. The socket is bound inside a fresh
// 0700 directory next to path, chmodded, then hard-linked into place (which
// fails rather than replace a socket another process created meanwhile).
// If the temporary path would be too long for a socket, it binds path
// directly and chmods it before serving.
func listenPrivate(path string) (net.Listener, os.FileInfo, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".a")
	if err != nil {
		return nil, nil, fmt.Errorf("admin socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	bindPath := tmp
	if len(tmp) > config.MaxSocketPath {
		bindPath = path
	}
	ln, err := net.Listen("unix", bindPath)
	if err != nil {
		return nil, nil, fmt.Errorf("admin socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, os.FileInfo, error) {
		_ = ln.Close()
		if bindPath == path {
			_ = os.Remove(path)
		}
		return nil, nil, err
	}
	if err := os.Chmod(bindPath, 0o600); err != nil {
		return fail(fmt.Errorf("admin socket: %w", err))
	}
	if bindPath == tmp {
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fail(fmt.Errorf("%w: %s was created by another process", ErrSocketInUse, path))
			}
			return fail(fmt.Errorf("admin socket: %w", err))
		}
	}
	info, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("admin socket: %w", err))
	}
	return ln, info, nil
}

// statusBody is the JSON body of every admin response.
type statusBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Index  uint64 `json:"index,omitempty"` // a write's Raft log index, once committed
}

// splitHostPort splits s, "host:port", and reports whether it has a host
// and a port in 1..65535.
func splitHostPort(s string) (host string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.ParseUint(port, 10, 16)
	return host, err == nil && host != "" && perr == nil && n != 0
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// methods serves an endpoint by the request's method: get (which serves
// HEAD too), post and delete, those that are set. Any other method is
// answered with a JSON 405 whose Allow header names the methods served.
type methods struct {
	get, post, delete http.HandlerFunc
}

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var h http.HandlerFunc
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h = m.get
	case http.MethodPost:
		h = m.post
	case http.MethodDelete:
		h = m.delete
	}
	if h == nil {
		w.Header().Set("Allow", m.allow())
		writeJSON(w, http.StatusMethodNotAllowed, statusBody{Status: "method_not_allowed", Error: r.Method + " is not allowed"})
		return
	}
	h(w, r)
}

// allow lists the methods m serves, as an Allow header does.
func (m methods) allow() string {
	var allow []string
	if m.get != nil {
		allow = append(allow, http.MethodGet, http.MethodHead)
	}
	if m.post != nil {
		allow = append(allow, http.MethodPost)
	}
	if m.delete != nil {
		allow = append(allow, http.MethodDelete)
	}
	return strings.Join(allow, ", ")
}

func (a *Admin) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	if a.ready != nil {
		if err := a.ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}
