package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzParseAuditRecord: ParseAuditRecord never panics, fails only with
// ErrInvalidRecord, and what it accepts survives AppendJSON and a second
// parse unchanged.
func FuzzParseAuditRecord(f *testing.F) {
	for _, r := range []AuditRecord{acceptRecord(), requestRecord()} {
		f.Add(r.AppendJSON(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAuditRecord(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error %v does not wrap ErrInvalidRecord", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed record does not validate: %v", err)
		}
		out := r.AppendJSON(nil)
		if bytes.ContainsAny(out, "\n\r") || !json.Valid(out) {
			t.Fatalf("AppendJSON = %q: not one line of valid JSON", out)
		}
		again, err := ParseAuditRecord(out)
		if err != nil {
			t.Fatalf("reparse %q: %v", out, err)
		}
		if !recordsEqual(again, r) {
			t.Fatalf("reparse changed the record:\n %+v\n %+v", r, again)
		}
	})
}

// FuzzAppendJSON: whatever the fields hold, AppendJSON writes one line of
// valid JSON that a decoder reads back as the fields (invalid UTF-8 bytes
// as U+FFFD); and a record that validates parses back equal.
func FuzzAppendJSON(f *testing.F) {
	f.Add("edge-1/0badcafe/2", "edge-1", testClient, "gemini", "example.org", "/app/", "allowed", testCert,
		uint8(StageRequest), 20, int64(5120), int64(12345000), int64(1740830401500000000))
	f.Add("a\"b\\c", "\n\r\t", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "🌮\u009b", "\xed\xa0\x80", "\"}\n{",
		uint8(0), -1, int64(-1), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, id, node, client, scheme, host, path, reason, cert string,
		stage uint8, status int, n, dur, unixNano int64) {
		r := AuditRecord{
			ID: id, Time: time.Unix(0, unixNano), Node: node, Client: client, Stage: Stage(stage),
			Scheme: scheme, Host: host, Path: path, Status: status, Reason: reason, Cert: cert,
			Bytes: n, Duration: time.Duration(dur),
		}
		out := r.AppendJSON(nil)
		if bytes.IndexByte(out, '\n') >= 0 {
			t.Fatalf("newline in %q", out)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		checkLine(t, &r, out)
		if r.Validate() != nil {
			return
		}
		got, err := ParseAuditRecord(out)
		if err != nil {
			t.Fatalf("valid record %+v does not parse back from %q: %v", r, out, err)
		}
		r.Duration = r.Duration.Truncate(time.Microsecond)
		if !recordsEqual(got, r) {
			t.Fatalf("parsed %+v, want %+v", got, r)
		}
	})
}
