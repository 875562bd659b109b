package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func backupOf(t *testing.T, s *State) ([]byte, BackupHeader) {
	t.Helper()
	var b bytes.Buffer
	h, err := s.Freeze().WriteBackup(&b, BackupMeta{Cluster: "c1", Node: "n2", Term: 7, Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), h
}

func randomState(t *testing.T, seed uint64) *State {
	t.Helper()
	s := NewState()
	for i, e := range randomLog(seed, 300) {
		s.Apply(uint64(i+1), e)
	}
	return s
}

func TestBackupRoundTrip(t *testing.T) {
	s := randomState(t, 3)
	b, h := backupOf(t, s)
	if h.SHA256 != s.Hash() || h.Index != s.Index() || h.Node != "n2" || h.Cluster != "c1" || h.Term != 7 || h.Schema != SchemaVersion {
		t.Fatalf("header %+v; state hash %s, index %d", h, s.Hash(), s.Index())
	}
	if h.Bans == 0 || h.Rules == 0 || h.Pins == 0 || h.Tickets == 0 || h.Audit == 0 {
		t.Fatalf("the random state should hold some of everything: %+v", h)
	}
	back, st, err := ReadBackup(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if back != h || st.Hash() != s.Hash() {
		t.Fatalf("read back %+v (hash %s), wrote %+v", back, st.Hash(), h)
	}
	if v, err := VerifyBackup(bytes.NewReader(b)); err != nil || v != h {
		t.Fatalf("VerifyBackup = %+v, %v", v, err)
	}
	// The body is the state snapshot: the same bytes WriteSnapshot writes.
	if body := b[bytes.IndexByte(b, '\n')+1:]; !bytes.Equal(body, snapshotBytes(t, s)) {
		t.Fatal("the body is not the state snapshot")
	}
}

// rehash gives b's header the length and checksum of b's body, so a test
// reaches the checks after the checksum.
func rehash(t *testing.T, b []byte, edit func(h *BackupHeader, body []byte) []byte) []byte {
	t.Helper()
	i := bytes.IndexByte(b, '\n')
	var h BackupHeader
	if err := json.Unmarshal(b[:i], &h); err != nil {
		t.Fatal(err)
	}
	body := edit(&h, bytes.Clone(b[i+1:]))
	sum := sha256.Sum256(body)
	h.Size, h.SHA256 = int64(len(body)), hex.EncodeToString(sum[:])
	line, _ := json.Marshal(h)
	return append(append(line, '\n'), body...)
}

func TestReadBackupRefusesBadFiles(t *testing.T) {
	s := randomState(t, 5)
	good, _ := backupOf(t, s)
	hdrLen := bytes.IndexByte(good, '\n') + 1
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"flipped byte in the body", flip(hdrLen + (len(good)-hdrLen)/2), "checksum mismatch"},
		{"flipped byte at the end", flip(len(good) - 3), "checksum mismatch"},
		{"truncated", good[:len(good)-100], "truncated: the body has"},
		{"header only", good[:hdrLen], "truncated: the body has 0 of"},
		{"cut in the header", good[:hdrLen/2], "truncated?"},
		{"data after the body", append(bytes.Clone(good), "{}\n"...), "3 bytes after the body"},
		{"a state snapshot", []byte("{\"v\":1,\"index\":3}\n"), `not a Chimalli backup (format "")`},
		{"unknown header field", bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":1,"extra":true,`), 1), `unknown field "extra"`},
		{"other format", bytes.Replace(good, []byte(BackupFormat), []byte("chimalli-other"), 1), `not a Chimalli backup (format "chimalli-other")`},
		{"newer version", bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":2,`), 1), "format version 2, this node reads version 1"},
		{"newer version with new fields", bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":2,"extra":true,`), 1), "format version 2, this node reads version 1"},
		{"other schema", bytes.Replace(good, []byte(`"schema":1,`), []byte(`"schema":9,`), 1), "state schema version 9"},
		{"long first line", append(bytes.Repeat([]byte("x"), 70<<10), '\n'), "not a backup header"},
		{"counts differ", rehash(t, good, func(h *BackupHeader, body []byte) []byte { h.Bans++; return body }), "the header says index"},
		{"body does not decode", rehash(t, good, func(_ *BackupHeader, body []byte) []byte {
			return bytes.Replace(body, []byte(`"prefix":"`), []byte(`"prefix":"x`), 1)
		}), "bad snapshot: ban 0"},
		{"body with another schema", rehash(t, good, func(_ *BackupHeader, body []byte) []byte {
			return bytes.Replace(body, []byte(`{"v":1,`), []byte(`{"v":2,`), 1)
		}), "schema version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, st, err := ReadBackup(bytes.NewReader(tt.file))
			if err == nil || st != nil || !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadBackup = %v, want an ErrBadBackup containing %q", err, tt.want)
			}
		})
	}
	if _, err := VerifyBackup(bytes.NewReader(flip(len(good) - 3))); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("VerifyBackup of a corrupt file = %v", err)
	}
}
