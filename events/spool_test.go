package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func spoolIDs(t *testing.T, s *auditSpool) []string {
	t.Helper()
	var ids []string
	it := &pubItem{}
	for {
		_, ok, err := s.next(it)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ids
		}
		ids = append(ids, it.id+"="+string(it.buf))
	}
}

// TestSpoolSkipsACorruptTail reopens a spool whose first segment has a
// flipped byte in its second frame: the first frame is read, the rest of
// that segment is skipped and counted, the next segment is read whole.
func TestSpoolSkipsACorruptTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := openSpool(dir, 1<<20, 64)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if ok, err := s.append(fmt.Sprint("id", i), []byte(fmt.Sprintf(`{"n":%d,"pad":"0123456789012345678901234567890123456789"}`, i))); !ok || err != nil {
			t.Fatalf("append %d: %v, %v", i, ok, err)
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if len(s.segs) != 4 {
		t.Fatalf("%d segments, want one frame each", len(s.segs))
	}
	for _, seg := range s.segs {
		fi, err := os.Stat(s.path(seg.n))
		if err != nil || fi.Mode().Perm() != spoolFileMode {
			t.Fatalf("segment %v: %v", fi, err)
		}
	}
	// Put segment 2's frame at the end of segment 1, then flip a byte of it.
	first, second := s.path(s.segs[0].n), s.path(s.segs[1].n)
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	b[len(b)-3] ^= 0x20
	os.WriteFile(first, append(a, b...), 0o600)
	os.Remove(second)

	s, err = openSpool(dir, 1<<20, 64)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(spoolIDs(t, s))
	want := `[id0={"n":0,"pad":"0123456789012345678901234567890123456789"} id2={"n":2,"pad":"0123456789012345678901234567890123456789"} id3={"n":3,"pad":"0123456789012345678901234567890123456789"}]`
	if got != want || s.corrupt != 1 {
		t.Fatalf("read %s (corrupt %d)\nwant %s", got, s.corrupt, want)
	}
	if err := s.drained(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("drained spool holds %v", ents)
	}
}

func TestSpoolPrependComesFirstAndBoundHolds(t *testing.T) {
	s, err := openSpool(filepath.Join(t.TempDir(), "spool"), 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.append("late", []byte("{}")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	n, err := s.prepend([]*pubItem{{id: "a", buf: []byte("{1}")}, {id: "b", buf: []byte("{2}")}, {id: "c", buf: make([]byte, 100)}})
	if n != 2 || err != nil {
		t.Fatalf("prepend: %d, %v; want 2 that fit", n, err)
	}
	if ok, err := s.append("too-big", make([]byte, 80)); ok || err != nil {
		t.Fatalf("append over the bound: %v, %v", ok, err)
	}
	if got := fmt.Sprint(spoolIDs(t, s)); got != "[a={1} b={2} late={}]" {
		t.Fatalf("order %s", got)
	}
}

func TestSpoolRefusesAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	os.Mkdir(dir, 0o755)
	if _, err := openSpool(dir, 1<<20, 1<<20); !errors.Is(err, ErrUnsafeSpool) {
		t.Fatalf("err %v, want ErrUnsafeSpool", err)
	}
}
