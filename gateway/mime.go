package gateway

import (
	"mime"
	"path"
	"strings"
)

const (
	mimeGemini  = "text/gemini"
	mimeDefault = "application/octet-stream"
)

// contentType returns the Gemini meta for a file name: text/gemini for .gmi
// and .gemini, a built-in table for common types (so answers do not depend
// on the host's mime.types), then mime.TypeByExtension, then
// application/octet-stream. Text types other than text/gemini, whose
// default is already UTF-8, get "; charset=utf-8" unless they name a
// charset.
func contentType(name string) string {
	lower := strings.ToLower(path.Ext(name)) // no allocation when already lower-case
	if t := builtinType(lower); t != "" {
		return t
	}
	if lower == "" {
		return mimeDefault
	}
	t := mime.TypeByExtension(lower)
	switch {
	case t == "":
		return mimeDefault
	case strings.HasPrefix(t, "text/") && !strings.Contains(t, "charset="):
		return t + "; charset=utf-8"
	}
	return t
}

// builtinType maps a lower-case extension to its type, or "".
func builtinType(ext string) string {
	switch ext {
	case ".gmi", ".gemini":
		return mimeGemini
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".md", ".markdown":
		return "text/markdown; charset=utf-8"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".json":
		return "application/json"
	case ".xml":
		return "application/xml"
	case ".atom":
		return "application/atom+xml"
	case ".rss":
		return "application/rss+xml"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".svg":
		return "image/svg+xml"
	case ".ico":
		return "image/vnd.microsoft.icon"
	case ".pdf":
		return "application/pdf"
	case ".wasm":
		return "application/wasm"
	case ".mp3":
		return "audio/mpeg"
	case ".ogg":
		return "audio/ogg"
	case ".opus":
		return "audio/opus"
	case ".flac":
		return "audio/flac"
	case ".mp4":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".zip":
		return "application/zip"
	case ".gz":
		return "application/gzip"
	case ".tar":
		return "application/x-tar"
	case ".xz":
		return "application/x-xz"
	}
	return ""
}
