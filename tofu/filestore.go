package tofu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FileStore is a MemStore persisted to a text file, one pin per line in the
// FormatPinLine format; blank lines and lines starting with '#' are ignored
// on reading. It is the single-node pin store and the known-hosts file of
// `chimalli get` (PinUpstream keys "host:port").
//
// Every successful Claim or Forget rewrites the whole file atomically
// (temporary file in the same directory, fsync, rename, fsync of the
// directory), always with mode 0600, and the change becomes visible to
// Lookup only after the write succeeded: a failed write returns its error
// and leaves the previous pins in force. Rewriting drops comments. Writes
// are serialised within one FileStore; two processes writing one file at
// once are not coordinated, and the last rewrite wins.
//
// All methods are safe for concurrent use. Lookup never blocks on a write.
type FileStore struct {
	path string
	mem  *MemStore
	// wlock is held (a token in the channel) by the one writer; waiting for
	// it honours the caller's ctx, which a sync.Mutex cannot.
	wlock chan struct{}
}

var _ Store = (*FileStore)(nil)

// fileHeader starts every file FileStore writes.
const fileHeader = "# Chimalli TOFU pins, one per line. Rewritten on every change; comments are not kept.\n" +
	"# <kind> <scope> <sha256:cert> <spki-sha256:public key> <created> <not after>\n"

// maxPinLineLen bounds a line of a pin file: a scope of MaxScopeLen bytes,
// every byte escaped (3 KiB), plus the fixed fields (under 300 bytes), with
// room to spare.
const maxPinLineLen = 16 << 10

// OpenFileStore opens the pin file at path and loads its pins. A missing
// file is created empty with mode 0600, and missing parent directories with
// mode 0700. A malformed line is an error naming the file and line number;
// so is a key pinned twice.
func OpenFileStore(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("open pin store: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open pin store: %w", err)
	}
	s := &FileStore{path: path, mem: NewMemStore(), wlock: make(chan struct{}, 1)}
	err := s.load()
	if errors.Is(err, fs.ErrNotExist) {
		err = writeFileAtomic(path, []byte(fileHeader), 0o600, false)
		if errors.Is(err, fs.ErrExist) { // created meanwhile by another process
			err = nil
		}
		if err == nil {
			err = s.load()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open pin store: %w", err)
	}
	return s, nil
}

// load reads the file into s.mem, which must be empty.
func (s *FileStore) load() error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", s.path)
	}
	pins, err := readPins(f, s.path)
	if err != nil {
		return err
	}
	for _, p := range pins {
		s.mem.put(p)
	}
	return nil
}

// readPins parses a pin file; name is used in errors.
func readPins(r io.Reader, name string) ([]Pin, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxPinLineLen)
	seen := make(map[PinKey]int)
	var pins []Pin
	n := 0
	for sc.Scan() {
		n++
		line := strings.Trim(sc.Text(), " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		p, err := ParsePinLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if first, dup := seen[p.Key]; dup {
			return nil, fmt.Errorf("%s:%d: %w: %v already pinned at line %d", name, n, ErrBadPinLine, p.Key, first)
		}
		seen[p.Key] = n
		pins = append(pins, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	return pins, nil
}

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// Lookup returns the pin for key from memory. It does not allocate and does
// not wait for a write in progress.
func (s *FileStore) Lookup(key PinKey) (Pin, bool) { return s.mem.Lookup(key) }

// All returns every pin, sorted by kind then scope.
func (s *FileStore) All() []Pin { return s.mem.All() }

// Claim records p if p.Key has no pin, writing the file before p comes into
// force, and returns the pin in force: p when it won, the existing pin
// otherwise. It waits for another write in progress, or until ctx ends.
func (s *FileStore) Claim(ctx context.Context, p Pin) (Pin, error) {
	if err := p.Validate(); err != nil {
		return Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	if old, ok := s.mem.Lookup(p.Key); ok {
		return old, nil
	}
	if err := s.lock(ctx); err != nil {
		return Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	defer s.unlock()
	// Only the lock holder changes s.mem, so this check and the put below
	// are one atomic step.
	if old, ok := s.mem.Lookup(p.Key); ok {
		return old, nil
	}
	pins := append(s.mem.All(), p)
	sortPins(pins)
	if err := s.write(pins); err != nil {
		return Pin{}, fmt.Errorf("claim %v: %w", p.Key, err)
	}
	s.mem.put(p)
	return p, nil
}

// Forget removes the pin for key, rewriting the file first. The error wraps
// ErrNoPin when there is no such pin (the file is then left alone).
func (s *FileStore) Forget(ctx context.Context, key PinKey) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("forget %v: %w", key, err)
	}
	defer s.unlock()
	if _, ok := s.mem.Lookup(key); !ok {
		return fmt.Errorf("forget %v: %w", key, ErrNoPin)
	}
	pins := slices.DeleteFunc(s.mem.All(), func(p Pin) bool { return p.Key == key })
	if err := s.write(pins); err != nil {
		return fmt.Errorf("forget %v: %w", key, err)
	}
	s.mem.Forget(key)
	return nil
}

// lock takes the write lock, or returns ctx's error if ctx ends first.
func (s *FileStore) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unlock releases the write lock.
func (s *FileStore) unlock() { <-s.wlock }

// write replaces the file with pins, which must be sorted.
func (s *FileStore) write(pins []Pin) error {
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	for _, p := range pins {
		line, err := FormatPinLine(p)
		if err != nil {
			return err
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(s.path, buf.Bytes(), 0o600, true); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}
