package gateway

import "testing"

func TestContentType(t *testing.T) {
	tests := map[string]string{
		"index.gmi":      "text/gemini",
		"log.gemini":     "text/gemini",
		"UPPER.GMI":      "text/gemini",
		"a.txt":          "text/plain; charset=utf-8",
		"README.md":      "text/markdown; charset=utf-8",
		"page.html":      "text/html; charset=utf-8",
		"style.css":      "text/css; charset=utf-8",
		"app.js":         "text/javascript; charset=utf-8",
		"data.json":      "application/json",
		"feed.xml":       "application/xml",
		"logo.png":       "image/png",
		"photo.jpg":      "image/jpeg",
		"photo.JPEG":     "image/jpeg",
		"anim.gif":       "image/gif",
		"pic.webp":       "image/webp",
		"icon.svg":       "image/svg+xml",
		"paper.pdf":      "application/pdf",
		"mod.wasm":       "application/wasm",
		"song.mp3":       "audio/mpeg",
		"song.ogg":       "audio/ogg",
		"clip.mp4":       "video/mp4",
		"arch.zip":       "application/zip",
		"arch.tar.gz":    "application/gzip",
		"arch.tar":       "application/x-tar",
		"arch.tar.xz":    "application/x-xz",
		"noext":          "application/octet-stream",
		"weird.zzzzzzzz": "application/octet-stream",
		"dir.d/noext":    "application/octet-stream",
	}
	for name, want := range tests {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
}
