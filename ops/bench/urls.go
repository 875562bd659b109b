package bench

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
)

// ErrBadURLList is wrapped by ParseURLList errors about the list's content.
var ErrBadURLList = errors.New("bad URL list")

// ErrBadURL is wrapped by errors about a target URL that cannot be loaded.
var ErrBadURL = errors.New("bad target URL")

// maxURLBytes is the Gemini limit on a request URL.
const maxURLBytes = 1024

// maxListLine bounds one line of a URL list.
const maxListLine = 64 << 10

// ParseURLList reads a URL list: one URL a line; surrounding white space
// (and a byte order mark) is trimmed; blank lines and lines whose first non-blank character is '#' are
// ignored, and so is a trailing comment that starts with white space followed
// by '#'. A line left with white space inside is an error, as is a line
// longer than 64 KiB. URL syntax is not checked here but by Run, when it
// parses the targets.
func ParseURLList(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	var out []string
	for n := 1; sc.Scan(); n++ {
		u, err := parseListLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrBadURLList, n, err)
		}
		if u != "" {
			out = append(out, u)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrBadURLList, maxListLine)
		}
		return nil, fmt.Errorf("read URL list: %w", err)
	}
	return out, nil
}

// parseListLine returns the URL on one line, or "" for a blank or comment
// line.
func parseListLine(line []byte) (string, error) {
	s := strings.TrimFunc(string(line), isSpaceOrBOM)
	if s == "" || s[0] == '#' {
		return "", nil
	}
	if i := strings.IndexFunc(s, isSpace); i >= 0 {
		rest := strings.TrimFunc(s[i:], isSpaceOrBOM)
		if rest[0] != '#' {
			return "", errors.New("white space inside a URL")
		}
		s = s[:i]
	}
	return s, nil
}

// isSpace reports Unicode white space.
func isSpace(r rune) bool { return unicode.IsSpace(r) }

// isSpaceOrBOM reports white space or a byte order mark, both trimmed from
// the ends of a line.
func isSpaceOrBOM(r rune) bool { return r == '\ufeff' || unicode.IsSpace(r) }

// target is one parsed URL, shared read-only by the workers except for the
// first-seen server fingerprint.
type target struct {
	url     string
	request []byte // url + "\r\n"
	host    string // without brackets
	addr    string // host:port to dial
	isIP    bool
	tls     *tls.Config // set by Run

	// fp is the SHA-256 of the certificate the first connection saw.
	fp atomic.Pointer[[32]byte]
}

// parseTarget checks that raw is a gemini:// URL a Gemini server accepts and
// splits out what dialling needs.
func parseTarget(raw string) (*target, error) {
	if len(raw) > maxURLBytes {
		return nil, fmt.Errorf("%w: %d bytes, Gemini allows %d", ErrBadURL, len(raw), maxURLBytes)
	}
	if strings.ContainsAny(raw, "\r\n") {
		return nil, fmt.Errorf("%w: %q contains CR or LF", ErrBadURL, raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if u.Scheme != "gemini" {
		return nil, fmt.Errorf("%w: %q: scheme must be gemini", ErrBadURL, raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrBadURL, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: %q: Gemini URLs carry no user info", ErrBadURL, raw)
	}
	port := u.Port()
	if port == "" {
		port = "1965"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: %q: port must be 1 to 65535", ErrBadURL, raw)
	}
	return &target{
		url:     raw,
		request: []byte(raw + "\r\n"),
		host:    host,
		addr:    net.JoinHostPort(host, port),
		isIP:    net.ParseIP(host) != nil,
	}, nil
}
