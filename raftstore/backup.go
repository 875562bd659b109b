package raftstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// The backup format: one header line (BackupHeader, JSON), then the body,
// a state snapshot exactly as WriteSnapshot writes it. The header carries
// the body's length and SHA-256, so a file cut short or changed by one bit
// is refused before any of it is used; the SHA-256 of the body is also the
// state hash (State.Hash) of the saved state, as `cluster status` shows it.

// BackupFormat names the format in every backup header.
const BackupFormat = "chimalli-backup"

// BackupVersion is the version of the backup format (the header and its
// framing). The body has its own schema version (SchemaVersion).
const BackupVersion = 1

// maxBackupHeader bounds the header line.
const maxBackupHeader = 4 << 10

// ErrBadBackup is wrapped by the errors of ReadBackup and VerifyBackup: the
// file is not a backup this version can restore, or it is corrupt.
var ErrBadBackup = errors.New("bad backup")

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format  string    `json:"format"`  // BackupFormat
	V       int       `json:"v"`       // BackupVersion
	Schema  int       `json:"schema"`  // the body's schema version
	Cluster string    `json:"cluster"` // the cluster's name, where known
	Node    string    `json:"node"`    // the node that wrote it
	Index   uint64    `json:"index"`   // the Raft index of the last event in the state
	Term    uint64    `json:"term"`    // the Raft term when it was saved
	Time    time.Time `json:"time"`    // when it was saved (the node's clock)
	Bans    int       `json:"bans"`    // every ban the state holds, expired ones it still remembers included
	Rules   int       `json:"rules"`
	Pins    int       `json:"pins"`
	Tickets int       `json:"ticket_keys"`
	Audit   int       `json:"audit_keys"`
	Size    int64     `json:"size"`   // the body's length in bytes
	SHA256  string    `json:"sha256"` // the body's SHA-256 in hex: the state hash
}

// BackupMeta is what a backup says about where and when it was taken.
type BackupMeta struct {
	Cluster, Node string
	Term          uint64
	Time          time.Time
}

// WriteBackup writes f as a backup to w and returns its header. It writes
// the body twice, once to measure and hash it and once to w: f is
// immutable, so both are the same bytes, and nothing is held in memory.
func (f *Frozen) WriteBackup(w io.Writer, meta BackupMeta) (BackupHeader, error) {
	sum := sha256.New()
	cw := &countWriter{w: sum}
	if err := f.WriteSnapshot(cw); err != nil {
		return BackupHeader{}, err
	}
	h := BackupHeader{
		Format: BackupFormat, V: BackupVersion, Schema: SchemaVersion, Cluster: meta.Cluster, Node: meta.Node,
		Index: f.index, Term: meta.Term, Time: meta.Time.UTC(),
		Bans: f.bans.Len(), Rules: len(f.rules), Pins: len(f.pins), Tickets: len(f.tickets), Audit: len(f.audit),
		Size: cw.n, SHA256: hex.EncodeToString(sum.Sum(nil)),
	}
	line, err := json.Marshal(h)
	if err != nil {
		return BackupHeader{}, err
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return BackupHeader{}, fmt.Errorf("write backup: %w", err)
	}
	cw = &countWriter{w: w}
	if err := f.WriteSnapshot(cw); err != nil {
		return BackupHeader{}, err
	}
	if cw.n != h.Size {
		return BackupHeader{}, fmt.Errorf("write backup: the body changed between two writes (%d bytes, then %d)", h.Size, cw.n)
	}
	return h, nil
}

// ReadBackup reads a whole backup from r and returns its header and state.
// It refuses (with an error wrapping ErrBadBackup) another format or
// version, a body whose length or SHA-256 differs from the header's (a
// corrupt or truncated file), anything after the body, and a body that
// ReadSnapshot refuses or whose counts differ from the header's. Nothing
// of a refused backup may be used.
func ReadBackup(r io.Reader) (BackupHeader, *State, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readBackupHeader(br)
	if err != nil {
		return h, nil, err
	}
	body := &hashReader{r: io.LimitReader(br, h.Size), h: sha256.New()}
	st, serr := ReadSnapshot(body)
	if err := finishBody(br, body, h); err != nil {
		return h, nil, err // the checksum says why the body did not decode
	}
	if serr != nil {
		return h, nil, fmt.Errorf("%w: %w", ErrBadBackup, serr)
	}
	want := BackupHeader{Index: h.Index, Bans: h.Bans, Rules: h.Rules, Pins: h.Pins, Tickets: h.Tickets, Audit: h.Audit}
	if got := st.Counts(); got != want {
		return h, nil, fmt.Errorf("%w: the header says %s, the body holds %s", ErrBadBackup, counts(want), counts(got))
	}
	return h, st, nil
}

// VerifyBackup reads a backup from r and checks its header, length and
// SHA-256 without decoding the body: a quick check that a file was written
// whole. ReadBackup checks everything.
func VerifyBackup(r io.Reader) (BackupHeader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readBackupHeader(br)
	if err != nil {
		return h, err
	}
	body := &hashReader{r: io.LimitReader(br, h.Size), h: sha256.New()}
	return h, finishBody(br, body, h)
}

func readBackupHeader(br *bufio.Reader) (BackupHeader, error) {
	var h BackupHeader
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > maxBackupHeader:
		return h, fmt.Errorf("%w: the first line is not a backup header (longer than %d bytes)", ErrBadBackup, maxBackupHeader)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return h, fmt.Errorf("%w: empty file", ErrBadBackup)
	}
	var probe struct {
		Format string `json:"format"`
		V      int    `json:"v"`
	}
	perr := json.Unmarshal(line, &probe)
	switch {
	case err != nil && (perr != nil || probe.Format == BackupFormat):
		return h, fmt.Errorf("%w: header: %w (truncated?)", ErrBadBackup, err)
	case perr != nil:
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, perr)
	case probe.Format != BackupFormat:
		return h, fmt.Errorf("%w: not a Chimalli backup (format %q)", ErrBadBackup, probe.Format)
	case probe.V != BackupVersion: // a newer version may add header fields: say so rather than name one
		return h, fmt.Errorf("%w: format version %d, this node reads version %d", ErrBadBackup, probe.V, BackupVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	switch {
	case h.Schema != SchemaVersion:
		return h, fmt.Errorf("%w: state schema version %d, this node reads version %d", ErrBadBackup, h.Schema, SchemaVersion)
	case h.Size <= 0 || len(h.SHA256) != sha256.Size*2:
		return h, fmt.Errorf("%w: header: no body length or checksum", ErrBadBackup)
	}
	return h, nil
}

// finishBody reads what is left of the body, then checks its length, that
// nothing follows it and its checksum.
func finishBody(br *bufio.Reader, body *hashReader, h BackupHeader) error {
	if _, err := io.Copy(io.Discard, body); err != nil {
		return fmt.Errorf("%w: read: %w", ErrBadBackup, err)
	}
	if body.n != h.Size {
		return fmt.Errorf("%w: truncated: the body has %d of %d bytes", ErrBadBackup, body.n, h.Size)
	}
	if n, _ := io.Copy(io.Discard, br); n > 0 {
		return fmt.Errorf("%w: %d bytes after the body", ErrBadBackup, n)
	}
	if got := hex.EncodeToString(body.h.Sum(nil)); got != h.SHA256 {
		return fmt.Errorf("%w: checksum mismatch: the body's SHA-256 is %s, the header says %s: the file is corrupt", ErrBadBackup, got, h.SHA256)
	}
	return nil
}

func counts(h BackupHeader) string {
	return fmt.Sprintf("index %d, %d bans, %d rules, %d pins, %d ticket keys, %d audit keys", h.Index, h.Bans, h.Rules, h.Pins, h.Tickets, h.Audit)
}

// Counts returns the state's index and sizes as a backup header gives
// them.
func (s *State) Counts() BackupHeader {
	return BackupHeader{Index: s.index, Bans: s.bans.Len(), Rules: len(s.rules), Pins: len(s.pins),
		Tickets: len(s.tickets), Audit: len(s.audit)}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (r *hashReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	return n, err
}
