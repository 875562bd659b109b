package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests; reaching it is a failure.
const testTimeout = 10 * time.Second

// newRecord returns a valid record for Record to fill in (ID, Node, Time).
func newRecord() *AuditRecord {
	r := requestRecord()
	r.ID, r.Node, r.Time = "", "", time.Time{}
	return &r
}

// closeLog closes l, failing the test on error.
func closeLog(t *testing.T, l *AuditLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// parseLines parses every non-empty line of b as a record.
func parseLines(t *testing.T, b []byte) []AuditRecord {
	t.Helper()
	var out []AuditRecord
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		r, err := ParseAuditRecord(line)
		if err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		out = append(out, r)
	}
	return out
}

// wait fails the test unless ch delivers within testTimeout.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// gateWriter blocks every Write until the test closes release. It reports
// each Write's start on entered (the writer is now blocked) and its end on
// written (the bytes are now in buf).
type gateWriter struct {
	entered chan struct{}
	written chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGateWriter() *gateWriter {
	return &gateWriter{
		entered: make(chan struct{}, 100),
		written: make(chan struct{}, 100),
		release: make(chan struct{}),
	}
}

func (w *gateWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	w.mu.Lock()
	n, err := w.buf.Write(p)
	w.mu.Unlock()
	w.written <- struct{}{}
	return n, err
}

func (w *gateWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

// scriptWriter fails the calls whose number (from 1) is in fail, and
// reports each call's number on calls once it has returned its result.
type scriptWriter struct {
	fail  map[int]bool
	calls chan int
	n     int
	buf   bytes.Buffer
}

func (w *scriptWriter) Write(p []byte) (int, error) {
	w.n++
	defer func(n int) { w.calls <- n }(w.n)
	if w.fail[w.n] || w.fail[0] {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

func TestAuditLogConcurrentRecords(t *testing.T) {
	const goroutines, each = 16, 250
	var buf bytes.Buffer // read only after Close, which waits for the writer
	l := NewAuditLog(&buf, AuditLogConfig{Buffer: goroutines * each, Node: "edge-1"})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := newRecord()
				r.Bytes = int64(g*each + i)
				if !l.Record(r) {
					t.Errorf("Record %d/%d refused", g, i)
				}
			}
		}()
	}
	wg.Wait()
	closeLog(t, l)

	records := parseLines(t, buf.Bytes())
	if len(records) != goroutines*each {
		t.Fatalf("%d records written, want %d", len(records), goroutines*each)
	}
	ids := map[string]bool{}
	payloads := map[int64]bool{}
	idPattern := regexp.MustCompile(`^edge-1/[0-9a-f]{8}/[1-9][0-9]*$`)
	for _, r := range records {
		if !idPattern.MatchString(r.ID) {
			t.Fatalf("id %q does not match %s", r.ID, idPattern)
		}
		if ids[r.ID] {
			t.Fatalf("duplicate id %q", r.ID)
		}
		ids[r.ID] = true
		payloads[r.Bytes] = true
		if r.Node != "edge-1" {
			t.Fatalf("node %q, want edge-1", r.Node)
		}
	}
	if len(payloads) != goroutines*each {
		t.Fatalf("%d distinct records, want %d", len(payloads), goroutines*each)
	}
	if s := l.Stats(); s != (AuditLogStats{Written: goroutines * each}) {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestAuditLogDropsWhenFull(t *testing.T) {
	const buffer, extra = 4, 3
	w := newGateWriter()
	l := NewAuditLog(w, AuditLogConfig{Buffer: buffer, Node: "n"})
	defer func() {
		select {
		case <-w.release:
		default:
			close(w.release)
		}
	}()

	// The writer takes the first record and blocks writing it.
	if !l.Record(newRecord()) {
		t.Fatal("first Record refused")
	}
	wait(t, w.entered, "the writer to start writing")

	// Now the queue fills, then Record drops without blocking.
	results := make(chan []bool, 1)
	go func() {
		var got []bool
		for range buffer + extra {
			got = append(got, l.Record(newRecord()))
		}
		results <- got
	}()
	got := wait(t, results, "Record to return while the writer is blocked")
	for i, ok := range got {
		if want := i < buffer; ok != want {
			t.Fatalf("Record %d = %v, want %v (results %v)", i, ok, want, got)
		}
	}
	if s := l.Stats(); s.Dropped != extra || s.Written != 0 {
		t.Fatalf("Stats = %+v, want %d dropped and none written yet", s, extra)
	}

	close(w.release)
	closeLog(t, l)
	if s := l.Stats(); s != (AuditLogStats{Written: 1 + buffer, Dropped: extra}) {
		t.Fatalf("Stats = %+v", s)
	}
	if n := len(parseLines(t, w.bytes())); n != 1+buffer {
		t.Fatalf("%d lines written, want %d", n, 1+buffer)
	}
}

func TestAuditLogFlushesWhenIdle(t *testing.T) {
	w := newGateWriter()
	close(w.release) // never block; just report writes
	l := NewAuditLog(w, AuditLogConfig{Node: "n"})
	defer closeLog(t, l)
	if !l.Record(newRecord()) {
		t.Fatal("Record refused")
	}
	// Without Close, the line reaches the writer because the queue ran empty.
	wait(t, w.written, "the record to be flushed")
	if n := len(parseLines(t, w.bytes())); n != 1 {
		t.Fatalf("%d lines written, want 1", n)
	}
}

func TestAuditLogClose(t *testing.T) {
	var buf bytes.Buffer
	l := NewAuditLog(&buf, AuditLogConfig{Node: "n"})
	for range 3 {
		l.Record(newRecord())
	}
	closeLog(t, l)
	if n := len(parseLines(t, buf.Bytes())); n != 3 {
		t.Fatalf("%d lines after Close, want 3", n)
	}
	closeLog(t, l) // idempotent
	if l.Record(newRecord()) {
		t.Fatal("Record after Close returned true")
	}
	if s := l.Stats(); s != (AuditLogStats{Written: 3, Dropped: 1}) {
		t.Fatalf("Stats = %+v", s)
	}
	if n := len(parseLines(t, buf.Bytes())); n != 3 {
		t.Fatalf("%d lines after Record on a closed log, want 3", n)
	}
}

func TestAuditLogCloseHonoursContext(t *testing.T) {
	w := newGateWriter()
	l := NewAuditLog(w, AuditLogConfig{Node: "n"})
	l.Record(newRecord())
	wait(t, w.entered, "the writer to start writing")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a cancelled context = %v, want context.Canceled", err)
	}
	if l.Record(newRecord()) {
		t.Fatal("Record during Close returned true")
	}
	close(w.release)
	closeLog(t, l)
	if s := l.Stats(); s != (AuditLogStats{Written: 1, Dropped: 1}) {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestAuditLogWriteErrors(t *testing.T) {
	t.Run("every write fails", func(t *testing.T) {
		w := &scriptWriter{fail: map[int]bool{0: true}, calls: make(chan int, 100)}
		l := NewAuditLog(w, AuditLogConfig{Node: "n"})
		for range 5 {
			l.Record(newRecord())
		}
		closeLog(t, l)
		if s := l.Stats(); s != (AuditLogStats{WriteErrors: 5}) {
			t.Fatalf("Stats = %+v, want 5 write errors", s)
		}
	})
	t.Run("recovers after a failure", func(t *testing.T) {
		w := &scriptWriter{fail: map[int]bool{1: true}, calls: make(chan int, 100)}
		l := NewAuditLog(w, AuditLogConfig{Node: "n"})
		l.Record(newRecord())
		wait(t, w.calls, "the failing write")
		second := newRecord()
		l.Record(second)
		closeLog(t, l)
		if s := l.Stats(); s != (AuditLogStats{Written: 1, WriteErrors: 1}) {
			t.Fatalf("Stats = %+v, want 1 written and 1 write error", s)
		}
		records := parseLines(t, w.buf.Bytes())
		if len(records) != 1 || records[0].ID != second.ID {
			t.Fatalf("records %+v, want only %s", records, second.ID)
		}
		if !bytes.HasPrefix(w.buf.Bytes(), []byte("\n{")) {
			t.Fatalf("output %q does not start a fresh line after the failure", w.buf.Bytes())
		}
	})
}

func TestAuditLogRefusesInvalid(t *testing.T) {
	var buf bytes.Buffer
	l := NewAuditLog(&buf, AuditLogConfig{Node: "n"})
	r := newRecord()
	r.Client = "192.0.2.7"
	if l.Record(r) {
		t.Fatal("Record of a raw address returned true")
	}
	closeLog(t, l)
	if buf.Len() != 0 {
		t.Fatalf("wrote %q", buf.Bytes())
	}
	if s := l.Stats(); s != (AuditLogStats{Invalid: 1}) {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestAuditLogFillsIDNodeTime(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 7200))
	l := NewAuditLog(io.Discard, AuditLogConfig{Node: "n1", Now: func() time.Time { return at }})
	defer closeLog(t, l)
	other := NewAuditLog(io.Discard, AuditLogConfig{Node: "n1"})
	defer closeLog(t, other)

	r1, r2 := newRecord(), newRecord()
	r2.Node, r2.Time = "elsewhere", at.Add(time.Hour)
	l.Record(r1)
	l.Record(r2)
	boot, _, _ := strings.Cut(strings.TrimPrefix(r1.ID, "n1/"), "/")
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(boot) {
		t.Fatalf("boot id %q in %q, want 8 hex", boot, r1.ID)
	}
	if want := fmt.Sprintf("n1/%s/1", boot); r1.ID != want {
		t.Fatalf("first ID %q, want %q", r1.ID, want)
	}
	if want := fmt.Sprintf("n1/%s/2", boot); r2.ID != want {
		t.Fatalf("second ID %q, want %q", r2.ID, want)
	}
	if r1.Node != "n1" || r2.Node != "elsewhere" {
		t.Fatalf("nodes %q, %q; want n1 (filled) and elsewhere (kept)", r1.Node, r2.Node)
	}
	if !r1.Time.Equal(at) || r1.Time.Location() != time.UTC || !r2.Time.Equal(at.Add(time.Hour)) {
		t.Fatalf("times %v, %v; want %v in UTC (filled) and %v (kept)", r1.Time, r2.Time, at, at.Add(time.Hour))
	}
	r3 := newRecord()
	other.Record(r3)
	if strings.HasPrefix(r3.ID, "n1/"+boot+"/") {
		t.Fatalf("two logs share the boot id %q", boot)
	}
}

func TestOpenAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditFile(path, AuditLogConfig{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(newRecord())
	closeLog(t, l)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}

	// A second open appends.
	l, err = OpenAuditFile(path, AuditLogConfig{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(newRecord())
	closeLog(t, l)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseLines(t, b)); n != 2 {
		t.Fatalf("%d records in the file, want 2", n)
	}
}

func TestOpenAuditFileRefusesOpenModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o620, 0o604} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			l, err := OpenAuditFile(path, AuditLogConfig{})
			if err == nil {
				closeLog(t, l)
				t.Fatal("OpenAuditFile accepted the file")
			}
			if !errors.Is(err, ErrUnsafeAuditFile) {
				t.Fatalf("err = %v, want ErrUnsafeAuditFile", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("%04o", mode)) {
				t.Fatalf("err %q does not name the path and mode %04o", msg, mode)
			}
		})
	}
}

func TestOpenAuditFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
	}{
		{"directory", dir},
		{"missing parent", filepath.Join(dir, "no", "audit.jsonl")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := OpenAuditFile(tc.path, AuditLogConfig{}); err == nil {
				closeLog(t, l)
				t.Fatal("OpenAuditFile succeeded")
			}
		})
	}
}

func TestOpenAuditFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("untouched\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target string
	}{
		{"to a file", target},
		{"to a missing file", filepath.Join(dir, "missing")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if err := os.Symlink(tc.target, path); err != nil {
				t.Fatal(err)
			}
			l, err := OpenAuditFile(path, AuditLogConfig{})
			if err == nil {
				l.Record(newRecord())
				closeLog(t, l)
				t.Fatal("OpenAuditFile followed the symlink")
			}
			if !errors.Is(err, ErrUnsafeAuditFile) {
				t.Fatalf("err = %v, want ErrUnsafeAuditFile", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "symbolic link") {
				t.Fatalf("err %q does not name the path and say it is a symbolic link", msg)
			}
			if b, err := os.ReadFile(target); err != nil || string(b) != "untouched\n" {
				t.Fatalf("target now %q (err %v), want it untouched", b, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the symlink's missing target was created (Lstat err %v)", err)
			}
		})
	}
}

func TestOpenAuditFileRefusesFIFOWithoutBlocking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// No reader holds the FIFO open: a blocking open would never return.
	done := make(chan error, 1)
	go func() {
		l, err := OpenAuditFile(path, AuditLogConfig{})
		if err == nil {
			l.Close(context.Background())
		}
		done <- err
	}()
	err := wait(t, done, "OpenAuditFile to return on a FIFO")
	if !errors.Is(err, ErrUnsafeAuditFile) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrUnsafeAuditFile naming %s", err, path)
	}
}

// A link above the file is the operator's choice of path (say /var/log on
// another disk) and is followed; only the file itself must not be a link.
func TestOpenAuditFileFollowsSymlinkedDirectory(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "logs")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	l, err := OpenAuditFile(filepath.Join(link, "audit.jsonl"), AuditLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(newRecord())
	closeLog(t, l)
	b, err := os.ReadFile(filepath.Join(real, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parseLines(t, b)); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}
