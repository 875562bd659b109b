package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks bounds the symbolic links one resolve follows (Linux's
// MAXSYMLINKS): more is a loop.
const maxLinks = 40

// errLinkRefused is the cause of a 51 for a link that resolve will not
// follow: out of the root, absolute, or through a name beginning with ".".
var errLinkRefused = errors.New("symbolic link refused")

// errChanged is the cause of a 51 when a path component changed between
// resolve's look at it and its opening (a race with a writer in the tree).
var errChanged = errors.New("path changed while being opened")

// resolve opens name, an fs.ValidPath, in root and returns the open file,
// its info and its real name: name with every symbolic link replaced by
// what it leads to, the path of the file actually opened.
//
// It walks one component at a time, as os.Root does, but sees the links:
// each component is looked at with Lstat in the directory opened before
// it; a link's target is spliced into the path still to walk; a directory
// is opened (OpenRoot) and a last component opened (OpenFile), and either
// must be the very file Lstat saw (os.SameFile), so a link swapped in
// between the look and the open is refused, not followed. Every directory
// stays open until the walk ends, so the real name is the path of what was
// opened, not a path that was true a moment before.
//
// Each time it follows a link it calls check with the canonical request
// path that the walk now heads for: the real name so far joined with the
// rest of the path, ".." resolved, percent-encoded as CanonicalPath would
// (aliasPath). A non-nil error from check ends the walk with that error
// before anything further is looked at, so the answer does not depend on
// whether the rest of the path exists. Without a link check is never
// called.
//
// ".." above the root, an absolute link, a name beginning with "." reached
// through a link, more than maxLinks links, or a non-directory in the
// middle of the path all fail; errors are the os errors or errLinkRefused
// and errChanged, for a caller to turn into a 51.
func resolve(root *os.Root, name string, check func(path string) error) (*os.File, fs.FileInfo, string, error) {
	dirs := []*os.Root{root} // dirs[0] is the caller's; the rest are closed here
	defer func() {
		for _, d := range dirs[1:] {
			d.Close()
		}
	}()
	var real []string // the components of the directories in dirs[1:], then the file
	var rest []string // what remains to walk
	if name != "." {
		rest = strings.Split(name, "/")
	}
	links := 0
	for len(rest) > 0 {
		seg := rest[0]
		rest = rest[1:]
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..":
			if len(real) == 0 {
				return nil, nil, "", errLinkRefused
			}
			dirs[len(dirs)-1].Close()
			dirs, real = dirs[:len(dirs)-1], real[:len(real)-1]
			continue
		case seg[0] == '.':
			return nil, nil, "", errLinkRefused
		}
		dir := dirs[len(dirs)-1]
		lfi, err := dir.Lstat(seg)
		if err != nil {
			return nil, nil, "", err
		}
		if lfi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return nil, nil, "", syscall.ELOOP
			}
			target, err := dir.Readlink(seg)
			if err != nil {
				return nil, nil, "", err
			}
			target = filepath.ToSlash(target)
			if target == "" || filepath.IsAbs(target) || strings.HasPrefix(target, "/") {
				return nil, nil, "", errLinkRefused
			}
			rest = append(strings.Split(target, "/"), rest...)
			p, ok := aliasPath(real, rest)
			if !ok {
				return nil, nil, "", errLinkRefused
			}
			if err := check(p); err != nil {
				return nil, nil, "", err
			}
			continue
		}
		if len(rest) == 0 {
			f, fi, err := openSame(dir, seg, lfi)
			if err != nil {
				return nil, nil, "", err
			}
			return f, fi, strings.Join(append(real, seg), "/"), nil
		}
		if !lfi.IsDir() {
			return nil, nil, "", syscall.ENOTDIR
		}
		sub, err := openDirSame(dir, seg, lfi)
		if err != nil {
			return nil, nil, "", err
		}
		dirs, real = append(dirs, sub), append(real, seg)
	}
	// The path ended on a directory already open ("a/..", a link to ".").
	f, err := dirs[len(dirs)-1].OpenFile(".", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, "", err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", err
	}
	if len(real) == 0 {
		return f, fi, ".", nil
	}
	return f, fi, strings.Join(real, "/"), nil
}

// openSame opens name in dir, non-blocking, and checks that it is the file
// lfi (from Lstat) describes.
func openSame(dir *os.Root, name string, lfi fs.FileInfo) (*os.File, fs.FileInfo, error) {
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !os.SameFile(lfi, fi) {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, errChanged)
	}
	return f, fi, nil
}

// openDirSame opens the directory name in dir and checks that it is the
// directory lfi (from Lstat) describes: a link swapped in since is
// refused, not followed.
func openDirSame(dir *os.Root, name string, lfi fs.FileInfo) (*os.Root, error) {
	sub, err := dir.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	sfi, err := sub.Stat(".")
	if err != nil {
		sub.Close()
		return nil, err
	}
	if !os.SameFile(lfi, sfi) {
		sub.Close()
		return nil, fmt.Errorf("%s: %w", name, errChanged)
	}
	return sub, nil
}

// aliasPath returns the canonical request path of the real components
// real followed by the components rest, with "." and "" dropped and ".."
// taking off the component before it. ok is false when ".." climbs above
// the root or a component begins with ".", a name the docroot never
// serves.
func aliasPath(real, rest []string) (string, bool) {
	parts := make([]string, len(real), len(real)+len(rest))
	copy(parts, real)
	for _, seg := range rest {
		switch {
		case seg == "" || seg == ".":
		case seg == "..":
			if len(parts) == 0 {
				return "", false
			}
			parts = parts[:len(parts)-1]
		case seg[0] == '.':
			return "", false
		default:
			parts = append(parts, seg)
		}
	}
	b := make([]byte, 0, 64)
	for _, seg := range parts {
		b = append(b, '/')
		b = appendEncodedSegment(b, []byte(seg))
	}
	if len(b) == 0 {
		return "/", true
	}
	return string(b), true
}
