package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/fstest"
)

// recorder is a ResponseWriter for handler tests: it keeps the header and
// the body (or counts and drops the body when discard is set).
type recorder struct {
	header  bool
	status  int
	meta    string
	body    bytes.Buffer
	n       int64
	discard bool
}

func (r *recorder) WriteHeader(status int, meta string) error {
	if r.header {
		return errors.New("recorder: header already written")
	}
	r.header, r.status, r.meta = true, status, meta
	return nil
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.header || r.status/10 != 2 {
		return 0, errors.New("recorder: body without a 2x header")
	}
	r.n += int64(len(p))
	if r.discard {
		return len(p), nil
	}
	return r.body.Write(p)
}

func (r *recorder) HeaderWritten() bool { return r.header }

func (r *recorder) reset() { *r = recorder{discard: r.discard} }

// reasonOf returns the Reason of a handler error, ReasonNone for nil and
// ReasonInternal for an error that is not an *Error.
func reasonOf(err error) Reason {
	if err == nil {
		return ReasonNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInternal
}

// geminiRequest builds a request for raw, canonicalised as the parser would.
func geminiRequest(t testing.TB, raw string) *Request {
	t.Helper()
	p, err := CanonicalPath(raw)
	if err != nil {
		t.Fatalf("CanonicalPath(%q): %v", raw, err)
	}
	return &Request{Scheme: SchemeGemini, Host: "example.org", Path: p}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// newTestDocroot builds a document root with the cases the static handler
// must tell apart, and a secret file outside it.
func newTestDocroot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	writeFile(t, filepath.Join(outside, "secret.gmi"), []byte("outside secret\n"))

	writeFile(t, filepath.Join(root, "index.gmi"), []byte("# home\n"))
	writeFile(t, filepath.Join(root, "sub", "index.gmi"), []byte("# sub\n"))
	writeFile(t, filepath.Join(root, "sub", "page.gmi"), []byte("# page\n"))
	writeFile(t, filepath.Join(root, "a b", "c.txt"), []byte("spaced\n"))
	writeFile(t, filepath.Join(root, "notes.md"), []byte("*md*\n"))
	writeFile(t, filepath.Join(root, "blob.unknownext"), []byte{0, 1, 2})
	writeFile(t, filepath.Join(root, ".env"), []byte("SECRET=1\n"))
	writeFile(t, filepath.Join(root, "a", ".git", "config"), []byte("[core]\n"))
	writeFile(t, filepath.Join(root, ".well-known", "x.gmi"), []byte("hidden\n"))
	writeFile(t, filepath.Join(root, "emptydir", "readme.txt"), []byte("no index here\n"))
	if err := os.Mkdir(filepath.Join(root, "indexdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "indexdir", "index.gmi"), 0o755); err != nil {
		t.Fatal(err)
	}

	symlink(t, "sub/page.gmi", filepath.Join(root, "inside.gmi"))
	symlink(t, "sub", filepath.Join(root, "subdir-link"))
	symlink(t, filepath.Join(outside, "secret.gmi"), filepath.Join(root, "abs-out.gmi"))
	symlink(t, "../outside/secret.gmi", filepath.Join(root, "rel-out.gmi"))
	symlink(t, "../outside", filepath.Join(root, "outdir"))
	symlink(t, "missing.gmi", filepath.Join(root, "dangling.gmi"))
	symlink(t, "loop.gmi", filepath.Join(root, "loop.gmi"))

	if err := syscall.Mkfifo(filepath.Join(root, "fifo.gmi"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	ln, err := net.Listen("unix", filepath.Join(root, "sock.gmi"))
	if err != nil {
		t.Fatalf("unix socket: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return root
}

func openDocroot(t testing.TB, dir string) Handler {
	t.Helper()
	h, closer, err := NewDocroot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	return h
}

func TestDocroot(t *testing.T) {
	h := openDocroot(t, newTestDocroot(t))
	tests := []struct {
		name   string
		path   string
		query  string
		reason Reason
		status int
		meta   string
		body   string
	}{
		{name: "root index", path: "/", status: 20, meta: "text/gemini", body: "# home\n"},
		{name: "root index by name", path: "/index.gmi", status: 20, meta: "text/gemini", body: "# home\n"},
		{name: "subdir index", path: "/sub/", status: 20, meta: "text/gemini", body: "# sub\n"},
		{name: "subdir without slash redirects", path: "/sub", status: 31, meta: "/sub/"},
		{name: "redirect keeps query", path: "/sub", query: "x=1", status: 31, meta: "/sub/?x=1"},
		{name: "file", path: "/sub/page.gmi", status: 20, meta: "text/gemini", body: "# page\n"},
		{name: "percent-encoded segment", path: "/a%20b/c.txt", status: 20, meta: "text/plain; charset=utf-8", body: "spaced\n"},
		{name: "markdown", path: "/notes.md", status: 20, meta: "text/markdown; charset=utf-8", body: "*md*\n"},
		{name: "unknown type", path: "/blob.unknownext", status: 20, meta: "application/octet-stream", body: "\x00\x01\x02"},
		{name: "missing", path: "/nope.gmi", reason: ReasonNotFound},
		{name: "missing dir", path: "/nope/", reason: ReasonNotFound},
		{name: "file with trailing slash", path: "/sub/page.gmi/", reason: ReasonNotFound},
		{name: "dot-file", path: "/.env", reason: ReasonNotFound},
		{name: "dot-dir inside", path: "/a/.git/config", reason: ReasonNotFound},
		{name: "dot-dir itself", path: "/a/.git/", reason: ReasonNotFound},
		{name: "well-known", path: "/.well-known/x.gmi", reason: ReasonNotFound},
		{name: "directory without index", path: "/emptydir/", reason: ReasonNotFound},
		{name: "index.gmi is a directory", path: "/indexdir/", reason: ReasonNotFound},
		{name: "symlink inside root", path: "/inside.gmi", status: 20, meta: "text/gemini", body: "# page\n"},
		{name: "symlinked dir inside root", path: "/subdir-link/page.gmi", status: 20, meta: "text/gemini", body: "# page\n"},
		{name: "absolute symlink outside", path: "/abs-out.gmi", reason: ReasonNotFound},
		{name: "relative symlink outside", path: "/rel-out.gmi", reason: ReasonNotFound},
		{name: "symlinked dir outside", path: "/outdir/secret.gmi", reason: ReasonNotFound},
		{name: "dangling symlink", path: "/dangling.gmi", reason: ReasonNotFound},
		{name: "symlink loop", path: "/loop.gmi", reason: ReasonNotFound},
		{name: "fifo", path: "/fifo.gmi", reason: ReasonNotFound},
		{name: "socket", path: "/sock.gmi", reason: ReasonNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := geminiRequest(t, tc.path)
			r.RawQuery = tc.query
			var w recorder
			err := h.ServeGemini(context.Background(), &w, r)
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("reason = %v (%v), want %v", got, err, tc.reason)
			}
			if tc.reason != ReasonNone {
				if w.HeaderWritten() {
					t.Errorf("header %d %q written for a refusal", w.status, w.meta)
				}
				return
			}
			if w.status != tc.status || w.meta != tc.meta {
				t.Errorf("header = %d %q, want %d %q", w.status, w.meta, tc.status, tc.meta)
			}
			if got := w.body.String(); got != tc.body {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
		})
	}
}

func TestDocrootMissingDir(t *testing.T) {
	if _, _, err := NewDocroot(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("NewDocroot of a missing directory succeeded")
	}
}

func TestStaticRefusesTitan(t *testing.T) {
	h := NewStatic(fstest.MapFS{"index.gmi": {Data: []byte("x")}})
	r := geminiRequest(t, "/")
	r.Scheme = SchemeTitan
	var w recorder
	if got := reasonOf(h.ServeGemini(context.Background(), &w, r)); got != ReasonUploadsRefused {
		t.Fatalf("reason = %v, want %v", got, ReasonUploadsRefused)
	}
}

func TestStaticLargeFileStreams(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 8<<20+17)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "big.bin"), data)
	h := openDocroot(t, dir)

	// A writer that counts and hashes: the handler must not need the whole
	// file in memory, and every byte must arrive in order.
	hw := &hashWriter{h: sha256.New()}
	w := &chunkRecorder{w: hw}
	if err := h.ServeGemini(context.Background(), w, geminiRequest(t, "/big.bin")); err != nil {
		t.Fatal(err)
	}
	if w.status != 20 || w.meta != "application/octet-stream" {
		t.Fatalf("header = %d %q", w.status, w.meta)
	}
	if hw.n != int64(len(data)) {
		t.Fatalf("streamed %d bytes, want %d", hw.n, len(data))
	}
	if want := sha256.Sum256(data); !bytes.Equal(hw.h.Sum(nil), want[:]) {
		t.Fatal("streamed content differs from the file")
	}
	if w.maxChunk > copyBufferSize {
		t.Errorf("largest write %d bytes, want at most the %d-byte buffer", w.maxChunk, copyBufferSize)
	}
	if w.writes < 2 {
		t.Errorf("file written in %d chunk(s): not streamed", w.writes)
	}
}

type hashWriter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// chunkRecorder is a ResponseWriter that forwards the body to w and
// records the size of the writes.
type chunkRecorder struct {
	w        io.Writer
	header   bool
	status   int
	meta     string
	writes   int
	maxChunk int
}

func (c *chunkRecorder) WriteHeader(status int, meta string) error {
	c.header, c.status, c.meta = true, status, meta
	return nil
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.writes++
	c.maxChunk = max(c.maxChunk, len(p))
	return c.w.Write(p)
}

func (c *chunkRecorder) HeaderWritten() bool { return c.header }

func TestStaticStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f.txt"), bytes.Repeat([]byte("x"), 1<<20))
	h := openDocroot(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var w recorder
	err := h.ServeGemini(ctx, &w, geminiRequest(t, "/f.txt"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if w.n != 0 {
		t.Errorf("%d body bytes written after cancellation", w.n)
	}
}

func TestStaticMapFS(t *testing.T) {
	// NewStatic works on any fs.FS, with the same dot-file rule.
	h := NewStatic(fstest.MapFS{
		"index.gmi":        {Data: []byte("hi")},
		".hidden/file.gmi": {Data: []byte("no")},
		"img/logo.PNG":     {Data: []byte("png")},
	})
	for _, tc := range []struct {
		path   string
		reason Reason
		meta   string
	}{
		{"/", ReasonNone, "text/gemini"},
		{"/.hidden/file.gmi", ReasonNotFound, ""},
		{"/img/logo.PNG", ReasonNone, "image/png"},
		{"/img", ReasonNone, "/img/"},
	} {
		var w recorder
		err := h.ServeGemini(context.Background(), &w, geminiRequest(t, tc.path))
		if got := reasonOf(err); got != tc.reason {
			t.Errorf("%s: reason %v (%v), want %v", tc.path, got, err, tc.reason)
			continue
		}
		if tc.reason == ReasonNone && w.meta != tc.meta {
			t.Errorf("%s: meta %q, want %q", tc.path, w.meta, tc.meta)
		}
	}
}

func TestDocName(t *testing.T) {
	tests := []struct {
		path string
		name string
		dir  bool
		ok   bool
	}{
		{"/", ".", true, true},
		{"/a", "a", false, true},
		{"/a/", "a", true, true},
		{"/a/b.gmi", "a/b.gmi", false, true},
		{"/a%20b/c", "a b/c", false, true},
		{"/caf%C3%A9.gmi", "café.gmi", false, true},
		{"/.env", "", false, false},
		{"/%2Eenv", "", false, false},
		{"/a/%2e%2e/b", "", false, false},
		{"/a/..", "", false, false},
		{"/a%2Fb", "", false, false},
		{"/a%5Cb", "", false, false},
		{"/a%00b", "", false, false},
		{"/a%01b", "", false, false}, // a control byte, refused as by CanonicalPath
		{"/a%7Fb", "", false, false},
		{"/%FF.gmi", "", false, false}, // invalid UTF-8
		{"/%C0%AE", "", false, false},  // overlong '.'
		{"/a%zz", "", false, false},
		{"relative", "", false, false},
		{"", "", false, false},
	}
	for _, tc := range tests {
		name, dir, ok := docName(tc.path)
		if name != tc.name || dir != tc.dir || ok != tc.ok {
			t.Errorf("docName(%q) = %q, %v, %v; want %q, %v, %v", tc.path, name, dir, ok, tc.name, tc.dir, tc.ok)
		}
	}
}

func BenchmarkStaticSmallFile(b *testing.B) { benchStaticFile(b, "page.gmi") }

// BenchmarkStaticDeepFile serves a file three directories down: the
// docroot walks the path one component at a time (see resolve).
func BenchmarkStaticDeepFile(b *testing.B) { benchStaticFile(b, "a/b/c/page.gmi") }

// benchStaticFile serves a 1 KiB file at rel in a docroot.
func benchStaticFile(b *testing.B, rel string) {
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, filepath.FromSlash(rel)), bytes.Repeat([]byte("a"), 1024))
	h := openDocroot(b, dir)
	r := geminiRequest(b, "/"+rel)
	w := &recorder{discard: true}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		if err := h.ServeGemini(ctx, w, r); err != nil {
			b.Fatal(err)
		}
	}
	if w.n != 1024 {
		b.Fatalf("served %d bytes", w.n)
	}
}
