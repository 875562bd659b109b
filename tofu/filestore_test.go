package tofu

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openStore opens a FileStore at path or fails the test.
func openStore(t *testing.T, path string) *FileStore {
	t.Helper()
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkDirHolds fails unless dir holds exactly the named entries: no
// temporary files left behind.
func checkDirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// checkMode fails unless path has permission bits want.
func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s has mode %v, want %v", path, got, want)
	}
}

func TestFileStoreCreatesFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "known_hosts")
	s := openStore(t, path)
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
	checkMode(t, path, 0o600)
	checkMode(t, dir, 0o700)
	if len(s.All()) != 0 {
		t.Fatal("new store is not empty")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "#") {
		t.Fatalf("new file %q does not start with a comment", b)
	}
	checkDirHolds(t, dir, "known_hosts")
}

func TestFileStorePersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "pins")
	s := openStore(t, path)
	pins := []Pin{
		testPin(PinKey{PinUpstream, "backend:1965"}, 1),
		testPin(PinKey{PinClient, "example.org/app/"}, 2),
		testPin(PinKey{PinClient, "odd scope\n# upstream x:1"}, 3),
	}
	for _, p := range pins {
		if got, err := s.Claim(ctx, p); err != nil || !got.Equal(p) {
			t.Fatalf("Claim = %v, %v", got, err)
		}
		checkMode(t, path, 0o600)
		checkDirHolds(t, dir, "pins")
	}
	// The losing claim changes nothing on disk.
	if got, err := s.Claim(ctx, testPin(pins[0].Key, 9)); err != nil || !got.Equal(pins[0]) {
		t.Fatalf("second Claim = %v, %v; want the first pin", got, err)
	}

	r := openStore(t, path)
	all := r.All()
	if len(all) != len(pins) {
		t.Fatalf("reopened store holds %d pins, want %d", len(all), len(pins))
	}
	for _, p := range pins {
		got, ok := r.Lookup(p.Key)
		if !ok || got != p {
			t.Fatalf("reopened Lookup(%v) = %+v, %v; want %+v exactly", p.Key, got, ok, p)
		}
	}

	if err := r.Forget(ctx, pins[1].Key); err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, pins[1].Key); !errors.Is(err, ErrNoPin) {
		t.Fatalf("second Forget = %v, want ErrNoPin", err)
	}
	r2 := openStore(t, path)
	if _, ok := r2.Lookup(pins[1].Key); ok {
		t.Fatal("forgotten pin came back after reopening")
	}
	if len(r2.All()) != 2 {
		t.Fatalf("after Forget the file holds %d pins, want 2", len(r2.All()))
	}
	checkDirHolds(t, dir, "pins")
}

func TestFileStoreWritesMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	s := openStore(t, path)
	if _, err := s.Claim(context.Background(), testPin(PinKey{PinUpstream, "h:1965"}, 1)); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
}

func TestFileStoreReadsHandWrittenFile(t *testing.T) {
	cert := "SHA256:" + colonHex(hexUpper)
	spki := "spki-sha256:" + hexLower
	content := "# my hosts\r\n\r\n   \n  # indented comment\n" +
		"upstream gemini.example:1965 " + cert + " " + spki + " 2025-01-02T03:04:05Z 2026-01-02T03:04:05Z\r\n" +
		"\tclient example.org/app/\t" + cert + "\t" + spki + "\t2025-01-02T03:04:05+02:00\t2026-01-02T03:04:05Z   \n"
	path := filepath.Join(t.TempDir(), "pins")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path)
	if len(s.All()) != 2 {
		t.Fatalf("read %d pins, want 2", len(s.All()))
	}
	p, ok := s.Lookup(PinKey{PinUpstream, "gemini.example:1965"})
	if !ok || p.Identity.Cert != wantSum(t) {
		t.Fatalf("Lookup = %+v, %v", p, ok)
	}
}

func TestFileStoreMalformed(t *testing.T) {
	good := func(scope string) string {
		return "client " + scope + " sha256:" + hexLower + " spki-sha256:" + hexLower + " 2025-01-02T03:04:05Z 2026-01-02T03:04:05Z\n"
	}
	tests := []struct {
		name    string
		content string
		want    string // after "<path>:"
	}{
		{"bad first line", "garbage\n", "1: bad pin line"},
		{"bad third line", "# c\n" + good("a/") + "client b/ sha256:00 x y z\n", "3: bad pin line"},
		{"duplicate key", good("a/") + "\n" + good("a/"), "3: bad pin line: client a/ already pinned at line 1"},
		{"too long", "# " + strings.Repeat("x", maxPinLineLen+1) + "\n", "1: bufio.Scanner: token too long"},
		{"no trailing newline", good("a/") + "upstream x", "2: bad pin line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pins")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFileStore(path)
			if err == nil {
				t.Fatalf("OpenFileStore succeeded with %d pins", len(s.All()))
			}
			if want := path + ":" + tt.want; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
}

func TestFileStoreOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"a directory", dir},
		{"under a file", filepath.Join(file, "pins")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenFileStore(tt.path); err == nil {
				t.Fatalf("OpenFileStore(%q) succeeded", tt.path)
			}
		})
	}
}

// breakDir replaces dir with a regular file so that no file can be created
// in it, even by root, and returns a function that restores an empty dir.
func breakDir(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileStoreFailedWriteIsNotInForce(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "pins")
	s := openStore(t, path)
	kept := testPin(PinKey{PinClient, "a.org/"}, 1)
	if _, err := s.Claim(ctx, kept); err != nil {
		t.Fatal(err)
	}

	restore := breakDir(t, dir)
	p := testPin(PinKey{PinUpstream, "backend:1965"}, 2)
	if _, err := s.Claim(ctx, p); err == nil {
		t.Fatal("Claim succeeded with nowhere to write")
	}
	if _, ok := s.Lookup(p.Key); ok {
		t.Fatal("a pin that was not written is in force")
	}
	if o, _, err := Check(ctx, s, p.Key, p.Identity, testTime, testTime); err == nil || o != 0 {
		t.Fatalf("Check = %v, %v; want an error and no outcome", o, err)
	}
	if err := s.Forget(ctx, kept.Key); err == nil {
		t.Fatal("Forget succeeded with nowhere to write")
	}
	if _, ok := s.Lookup(kept.Key); !ok {
		t.Fatal("a pin whose removal was not written is gone")
	}

	restore()
	if got, err := s.Claim(ctx, p); err != nil || !got.Equal(p) {
		t.Fatalf("Claim after repair = %v, %v", got, err)
	}
	r := openStore(t, path)
	if len(r.All()) != 2 {
		t.Fatalf("after repair the file holds %d pins, want 2", len(r.All()))
	}
	checkDirHolds(t, dir, "pins")
}

func TestFileStoreClaimHonoursContext(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "pins"))
	if err := s.lock(context.Background()); err != nil { // a write in progress
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Claim(ctx, testPin(PinKey{PinClient, "a/"}, 1))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim while locked and canceled = %v, want context.Canceled", err)
	}
	if err := s.Forget(ctx, PinKey{PinClient, "a/"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Forget with a canceled ctx = %v, want context.Canceled", err)
	}
	s.unlock()
	if _, ok := s.Lookup(PinKey{PinClient, "a/"}); ok {
		t.Fatal("a canceled claim is in force")
	}
}

func TestConcurrentClaimsFileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pins")
	s := openStore(t, path)
	key := PinKey{PinClient, "example.org/app/"}
	winner := testConcurrentClaims(t, s, key, 50)
	r := openStore(t, path)
	if got, ok := r.Lookup(key); !ok || got != winner {
		t.Fatalf("reopened Lookup = %+v, %v; want the winner %+v", got, ok, winner)
	}
	if len(r.All()) != 1 {
		t.Fatalf("file holds %d pins, want 1", len(r.All()))
	}
	checkDirHolds(t, dir, "pins")
}

func TestFileStoreLookupDoesNotAllocate(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "pins"))
	key := PinKey{PinUpstream, "backend:1965"}
	if _, err := s.Claim(context.Background(), testPin(key, 1)); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := s.Lookup(key); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per hit", allocs)
	}
}
