package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
)

// indexFile is the document served for a directory.
const indexFile = "index.gmi"

// copyBufferSize is the size of the pooled buffers that stream bodies.
const copyBufferSize = 32 << 10

// copyBufs holds the buffers that stream bodies: files, proxied responses
// and Titan uploads to an upstream, for every route alike.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

var _ Handler = (*static)(nil)

// static serves a file tree. See NewStatic and NewDocroot.
type static struct {
	fsys fs.FS    // set by NewStatic
	root *os.Root // set by NewDocroot: files are opened by resolve
}

// NewStatic returns a handler serving the files of fsys at their request
// paths. The canonical request path is decoded once per segment and looked
// up relative to the root of fsys. It answers 51 (ReasonNotFound, revealing
// nothing) for a missing file, for any path segment beginning with "."
// (dot-files, .git, .well-known), for devices, pipes, sockets and other
// non-regular files, and for a directory without index.gmi: there are no
// listings. A directory requested without its trailing slash is redirected
// (31) to the path with one, so that relative links in its index work.
// Files stream through a pooled buffer; ctx ending stops the copy. The MIME
// type comes from the file name (see contentType in mime.go). Titan uploads are
// refused.
func NewStatic(fsys fs.FS) Handler {
	return &static{fsys: fsys}
}

// NewDocroot returns a handler serving the directory dir (see NewStatic)
// through an os.Root: no path, symbolic links included, can resolve outside
// dir. Files are opened non-blocking, so a named pipe cannot stall a
// request. Close the returned io.Closer when the handler is no longer used.
//
// A path's rules hold for the file actually served. The handler follows
// symbolic links itself, one path segment at a time (see resolve), and
// when a link leads elsewhere in the tree it maps the path it leads to back
// to a request path of the same host (the docroot serves request path /p
// from dir/p) and applies that path's route rules as well as those of the
// request path: "www/link -> admin" serves /link/secret.gmi only to a
// client that /admin/secret.gmi would be served to, and answers what
// /admin/secret.gmi would (60, 61, 62), before looking further, so a link
// reveals no more than the path it leads to. A link that leads to a path
// no route covers, or through a name beginning with ".", is 51. Hard links
// cannot be told from the original file: do not hard-link protected files
// into an open part of a docroot.
func NewDocroot(dir string) (Handler, io.Closer, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open docroot: %w", err)
	}
	return &static{root: root}, root, nil
}

// errNotFound returns the 51 every refusal of the static handler uses, so
// that a missing file and a forbidden one look alike.
func errNotFound(cause error) *Error {
	return &Error{Reason: ReasonNotFound, Msg: "not found", Err: cause}
}

func (s *static) ServeGemini(ctx context.Context, w ResponseWriter, r *Request) error {
	if r.Scheme == SchemeTitan {
		return &Error{Reason: ReasonUploadsRefused, Msg: "uploads are not accepted here"}
	}
	name, dir, ok := docName(r.Path)
	if !ok {
		return errNotFound(nil)
	}
	f, fi, real, err := s.open(ctx, r, name)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		f.Close()
		if !dir {
			return w.WriteHeader(StatusRedirect, dirRedirect(r))
		}
		name = path.Join(name, indexFile)
		if f, fi, _, err = s.open(ctx, r, path.Join(real, indexFile)); err != nil {
			return err
		}
	} else if dir {
		f.Close()
		return errNotFound(nil) // "file/": not a directory
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return errNotFound(nil)
	}
	if err := w.WriteHeader(StatusSuccess, contentType(name)); err != nil {
		return err
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	_, err = copyContext(ctx, w, f, *buf)
	return err
}

// open opens name and stats it, and returns the name of the file it
// opened: name itself, or in a docroot name with its links resolved (see
// resolve), which r's rules are checked against. Every failure to open is
// a 51 so that nothing about the tree leaks (missing, forbidden, escaping
// the root, a loop of links), except running out of file descriptors, a
// 41, and a route's refusal of the path a link leads to.
func (s *static) open(ctx context.Context, r *Request, name string) (fs.File, fs.FileInfo, string, error) {
	if s.root != nil {
		f, fi, real, err := resolve(s.root, name, func(p string) error { return r.checkAlias(ctx, p) })
		if err != nil {
			return nil, nil, "", openError(err)
		}
		return f, fi, real, nil
	}
	f, err := s.fsys.Open(name)
	if err != nil {
		return nil, nil, "", openError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", errNotFound(err)
	}
	return f, fi, name, nil
}

// openError turns a failure to open into the static handler's answer: a
// refusal it already carries, 41 for running out of file descriptors, 51
// for anything else.
func openError(err error) error {
	var ge *Error
	switch {
	case errors.As(err, &ge):
		return ge
	case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
		return &Error{Reason: ReasonUnavailable, Msg: "temporarily unavailable", Err: err}
	}
	return errNotFound(err)
}

// dirRedirect returns the request path with a trailing slash, and the
// query if any.
func dirRedirect(r *Request) string {
	if r.RawQuery == "" {
		return r.Path + "/"
	}
	return r.Path + "/?" + r.RawQuery
}

// docName turns a canonical request path into an fs.FS name, decoding each
// segment once with decodeSegment, the canonicaliser's own decoder. dir
// reports a trailing slash. ok is false for a path that must not be
// served: a segment beginning with "." or one that decodeSegment refuses
// (a decoded "/", "\\", NUL or other control byte, invalid UTF-8).
func docName(p string) (name string, dir, ok bool) {
	if p == "" || p[0] != '/' {
		return "", false, false
	}
	dir = p[len(p)-1] == '/'
	rest := strings.Trim(p, "/")
	if rest == "" {
		return ".", true, true
	}
	if !strings.Contains(rest, "%") && !strings.Contains(rest, "//") {
		for seg := range strings.SplitSeq(rest, "/") {
			if seg[0] == '.' || strings.ContainsAny(seg, "\\\x00") {
				return "", false, false
			}
		}
		return rest, dir, fs.ValidPath(rest)
	}
	b := make([]byte, 0, len(rest))
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" {
			continue
		}
		if len(b) > 0 {
			b = append(b, '/')
		}
		start := len(b)
		var err error
		if b, err = decodeSegment(b, seg); err != nil || len(b) == start || b[start] == '.' {
			return "", false, false
		}
	}
	name = string(b)
	return name, dir, name != "" && fs.ValidPath(name)
}

// copyContext copies src to dst through buf, like io.CopyBuffer, checking
// ctx before every chunk so that a cancelled request stops streaming.
func copyContext(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var written int64
	for {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}
