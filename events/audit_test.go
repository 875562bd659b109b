package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	testClient = "p1a2b3c:0123456789abcdef0123456789abcdef"
	testCert   = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// acceptRecord returns a valid record of a connection refused at accept.
func acceptRecord() AuditRecord {
	return AuditRecord{
		ID:       "edge-1/0badcafe/1",
		Time:     time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Node:     "edge-1",
		Client:   testClient,
		Stage:    StageAccept,
		Reason:   "rate_limited_hard",
		Duration: 42 * time.Microsecond,
	}
}

// requestRecord returns a valid record of an answered request.
func requestRecord() AuditRecord {
	return AuditRecord{
		ID:       "edge-1/0badcafe/2",
		Time:     time.Date(2025, 3, 1, 12, 0, 1, 500000000, time.UTC),
		Node:     "edge-1",
		Client:   testClient,
		Stage:    StageRequest,
		Scheme:   "gemini",
		Host:     "example.org",
		Path:     "/app/%E2%9C%93/",
		Status:   20,
		Reason:   "allowed",
		Cert:     testCert,
		Bytes:    5120,
		Duration: 12345 * time.Microsecond,
	}
}

// mergedRecord returns a valid record standing for 37 refusals of one
// client within one second (an AuditPublisher under a flood).
func mergedRecord() AuditRecord {
	r := acceptRecord()
	r.ID = "edge-1/0badcafe/3"
	r.Reason = "conn_limit"
	r.Count = 37
	return r
}

// wireRecord mirrors the JSON shape, for decoding with encoding/json
// independently of ParseAuditRecord.
type wireRecord struct {
	V          int    `json:"v"`
	ID         string `json:"id"`
	Time       string `json:"time"`
	Node       string `json:"node"`
	Client     string `json:"client"`
	Stage      string `json:"stage"`
	Scheme     string `json:"scheme"`
	Host       string `json:"host"`
	Path       string `json:"path"`
	Status     int    `json:"status"`
	Reason     string `json:"reason"`
	Cert       string `json:"cert"`
	Bytes      int64  `json:"bytes"`
	DurationUS int64  `json:"duration_us"`
	Count      int    `json:"count,omitempty"`
}

// wireOf is what a JSON decoder must read back from r.AppendJSON: strings
// with each invalid UTF-8 byte replaced by U+FFFD, the time in UTC, the
// duration in whole microseconds.
func wireOf(r *AuditRecord) wireRecord {
	valid := func(s string) string { return string([]rune(s)) }
	return wireRecord{
		V:          AuditVersion,
		ID:         valid(r.ID),
		Time:       r.Time.UTC().Format(time.RFC3339Nano),
		Node:       valid(r.Node),
		Client:     valid(r.Client),
		Stage:      r.Stage.String(),
		Scheme:     valid(r.Scheme),
		Host:       valid(r.Host),
		Path:       valid(r.Path),
		Status:     r.Status,
		Reason:     valid(r.Reason),
		Cert:       valid(r.Cert),
		Bytes:      r.Bytes,
		DurationUS: r.Duration.Microseconds(),
		Count:      wireCount(r.Count),
	}
}

// wireCount is the "count" key's value: absent (0) for one record.
func wireCount(n int) int {
	if n > 1 {
		return n
	}
	return 0
}

// checkLine fails unless out is one line of valid JSON that decodes to
// what r should look like.
func checkLine(t testing.TB, r *AuditRecord, out []byte) {
	t.Helper()
	if bytes.ContainsAny(out, "\n\r") {
		t.Fatalf("output is not one line: %q", out)
	}
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %q", out)
	}
	var got wireRecord
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if want := wireOf(r); got != want {
		t.Fatalf("decoded\n %+v\nwant\n %+v\nfrom %q", got, want, out)
	}
}

// recordsEqual compares records, times by instant.
func recordsEqual(a, b AuditRecord) bool {
	ta, tb := a.Time, b.Time
	a.Time, b.Time = time.Time{}, time.Time{}
	return ta.Equal(tb) && a == b
}

func TestStage(t *testing.T) {
	tests := []struct {
		name  string
		stage Stage
		text  string
		valid bool
	}{
		{"accept", StageAccept, "accept", true},
		{"request", StageRequest, "request", true},
		{"zero", 0, "stage(0)", false},
		{"out of range", 200, "stage(200)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.stage.String(); got != tc.text {
				t.Fatalf("String() = %q, want %q", got, tc.text)
			}
			if got := string(appendStage(nil, tc.stage)); got != tc.text {
				t.Fatalf("appendStage = %q, want %q", got, tc.text)
			}
			s, ok := ParseStage(tc.text)
			if ok != tc.valid || (ok && s != tc.stage) {
				t.Fatalf("ParseStage(%q) = %v, %v; want %v, %v", tc.text, s, ok, tc.stage, tc.valid)
			}
		})
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	hostile := []struct {
		name string
		s    string
	}{
		{"empty", ""},
		{"quotes and backslashes", `a"b\c\"d"\\`},
		{"newlines", "line1\nline2\r\nline3"},
		{"control bytes", "\x00\x01\x07\x08\x0b\x0c\x1b[31m\x1f\x7f"},
		{"C1 controls", "a\u0085b\u009bc"},
		{"invalid UTF-8", "ok\xff\xfe\xc3(\xe2\x82\xf0\x9f\x98end"},
		{"surrogate bytes", "\xed\xa0\x80"},
		{"emoji", "🛡️ Chimalli 🌮"},
		{"line separators", "a\u2028b\u2029c"},
		{"html", "<script>&amp;</script>"},
		{"json lookalike", `","v":2,"x":"`},
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			r := requestRecord()
			r.ID, r.Node, r.Client, r.Scheme = h.s, h.s, h.s, h.s
			r.Host, r.Path, r.Reason, r.Cert = h.s, h.s, h.s, h.s
			checkLine(t, &r, r.AppendJSON(nil))
		})
	}
	t.Run("numbers", func(t *testing.T) {
		r := requestRecord()
		r.Status, r.Bytes, r.Duration = -7, 1<<62, time.Duration(1<<62)
		checkLine(t, &r, r.AppendJSON(nil))
	})
	t.Run("merged", func(t *testing.T) {
		r := mergedRecord()
		out := r.AppendJSON(nil)
		if !bytes.HasSuffix(out, []byte(`,"duration_us":42,"count":37}`)) {
			t.Fatalf("count not last: %s", out)
		}
		checkLine(t, &r, out)
	})
	t.Run("count of one is not written", func(t *testing.T) {
		r := acceptRecord()
		r.Count = 1
		if out := r.AppendJSON(nil); bytes.Contains(out, []byte("count")) {
			t.Fatalf("count 1 written: %s", out)
		}
	})
	t.Run("zero record", func(t *testing.T) {
		var r AuditRecord
		checkLine(t, &r, r.AppendJSON(nil))
	})
	t.Run("appends to dst", func(t *testing.T) {
		r := acceptRecord()
		out := r.AppendJSON([]byte("prefix "))
		if !bytes.HasPrefix(out, []byte("prefix {")) {
			t.Fatalf("dst not kept: %q", out)
		}
		checkLine(t, &r, out[len("prefix "):])
	})
}

func TestAppendJSONKeyOrder(t *testing.T) {
	want := []string{"v", "id", "time", "node", "client", "stage", "scheme", "host", "path", "status", "reason", "cert", "bytes", "duration_us"}
	for _, r := range []AuditRecord{acceptRecord(), requestRecord(), {}} {
		dec := json.NewDecoder(bytes.NewReader(r.AppendJSON(nil)))
		if _, err := dec.Token(); err != nil { // {
			t.Fatal(err)
		}
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k.(string))
			if _, err := dec.Token(); err != nil { // value: all scalars
				t.Fatal(err)
			}
		}
		if strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Fatalf("keys %v, want %v", keys, want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "abc", `"abc"`},
		{"quote", `a"b`, `"a\"b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline tab return", "a\nb\tc\rd", `"a\nb\tc\rd"`},
		{"NUL and ESC", "\x00\x1b", `"\u0000\u001b"`},
		{"DEL", "\x7f", `"\u007f"`},
		{"C1 CSI", "\u009b", `"\u009b"`},
		{"invalid bytes one each", "a\xff\xfeb", `"a\ufffd\ufffdb"`},
		{"truncated rune", "\xe2\x82", `"\ufffd\ufffd"`},
		{"line separators", "\u2028\u2029", `"\u2028\u2029"`},
		{"multi-byte kept", "é✓🌮", `"é✓🌮"`},
		{"html kept", "<&>", `"<&>"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendJSONString(nil, tc.in)); got != tc.want {
				t.Fatalf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	r := requestRecord()
	r.Host = "a\"b\xff\u2028" // escapes too
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = r.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON: %v allocs/op, want 0", n)
	}
}

func TestParseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    AuditRecord
	}{
		{"accept", acceptRecord()},
		{"request", requestRecord()},
		{"titan unicode host", func() AuditRecord {
			r := requestRecord()
			r.Scheme, r.Host, r.Path, r.Status, r.Reason = "titan", "bücher.example", `/up/"quoted"\`, 30, "allowed"
			return r
		}()},
		{"bad request line", func() AuditRecord {
			r := requestRecord()
			r.Scheme, r.Host, r.Path, r.Status, r.Reason, r.Cert = "", "", "", 59, "bad_request", ""
			return r
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := append(tc.r.AppendJSON(nil), '\n')
			got, err := ParseAuditRecord(line)
			if err != nil {
				t.Fatalf("ParseAuditRecord(%s): %v", line, err)
			}
			if !recordsEqual(got, tc.r) {
				t.Fatalf("got %+v\nwant %+v", got, tc.r)
			}
		})
	}
}

func TestAuditGolden(t *testing.T) {
	path := filepath.Join("testdata", "audit_golden.jsonl")
	records := []AuditRecord{acceptRecord(), requestRecord(), mergedRecord()}
	var got []byte
	for i := range records {
		got = append(records[i].AppendJSON(got), '\n')
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s (run with -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(want, []byte("\n")), []byte("\n")) {
		r, err := ParseAuditRecord(line)
		if err != nil {
			t.Fatalf("golden line %d: %v", i+1, err)
		}
		if !recordsEqual(r, records[i]) {
			t.Fatalf("golden line %d parses to %+v, want %+v", i+1, r, records[i])
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		base   func() AuditRecord
		mutate func(r *AuditRecord)
		field  string // "" means valid
	}{
		{"valid accept", acceptRecord, func(r *AuditRecord) {}, ""},
		{"valid request", requestRecord, func(r *AuditRecord) {}, ""},
		{"valid bad request without url", requestRecord, func(r *AuditRecord) { r.Scheme, r.Host, r.Path, r.Status = "", "", "", 59 }, ""},
		{"valid key id with dash and underscore", acceptRecord, func(r *AuditRecord) { r.Client = "Key_2025-01:" + strings.Repeat("f", 32) }, ""},
		{"valid status 10", requestRecord, func(r *AuditRecord) { r.Status = 10 }, ""},
		{"valid status 69", requestRecord, func(r *AuditRecord) { r.Status = 69 }, ""},
		{"valid time not in UTC", acceptRecord, func(r *AuditRecord) { r.Time = r.Time.In(time.FixedZone("x", 3600)) }, ""},
		{"valid path root", requestRecord, func(r *AuditRecord) { r.Path = "/" }, ""},
		{"valid merged", mergedRecord, func(r *AuditRecord) {}, ""},
		{"valid count of one at request", requestRecord, func(r *AuditRecord) { r.Count = 1 }, ""},
		{"count negative", acceptRecord, func(r *AuditRecord) { r.Count = -1 }, "count"},
		{"count at request", requestRecord, func(r *AuditRecord) { r.Count = 2 }, "count"},

		{"id missing", acceptRecord, func(r *AuditRecord) { r.ID = "" }, "id"},
		{"id too long", acceptRecord, func(r *AuditRecord) { r.ID = strings.Repeat("x", maxIDBytes+1) }, "id"},
		{"id control character", acceptRecord, func(r *AuditRecord) { r.ID = "a\nb" }, "id"},
		{"time zero", acceptRecord, func(r *AuditRecord) { r.Time = time.Time{} }, "time"},
		{"time year 10000", acceptRecord, func(r *AuditRecord) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
		{"node missing", acceptRecord, func(r *AuditRecord) { r.Node = "" }, "node"},
		{"node invalid UTF-8", acceptRecord, func(r *AuditRecord) { r.Node = "n\xff" }, "node"},
		{"client missing", acceptRecord, func(r *AuditRecord) { r.Client = "" }, "client"},
		{"client raw IPv4", acceptRecord, func(r *AuditRecord) { r.Client = "192.0.2.7" }, "client"},
		{"client raw IPv4 with port", acceptRecord, func(r *AuditRecord) { r.Client = "192.0.2.7:51234" }, "client"},
		{"client raw IPv6", acceptRecord, func(r *AuditRecord) { r.Client = "2001:db8::7" }, "client"},
		{"client raw IPv6 with port", acceptRecord, func(r *AuditRecord) { r.Client = "[2001:db8::7]:51234" }, "client"},
		{"client raw IPv4-mapped IPv6", acceptRecord, func(r *AuditRecord) { r.Client = "::ffff:192.0.2.7" }, "client"},
		{"client raw IPv6 with zone", acceptRecord, func(r *AuditRecord) { r.Client = "fe80::1%eth0" }, "client"},
		{"client upper-case hex", acceptRecord, func(r *AuditRecord) { r.Client = "k1:" + strings.Repeat("A", 32) }, "client"},
		{"client short hash", acceptRecord, func(r *AuditRecord) { r.Client = "k1:" + strings.Repeat("a", 31) }, "client"},
		{"client no key id", acceptRecord, func(r *AuditRecord) { r.Client = ":" + strings.Repeat("a", 32) }, "client"},
		{"client key id too long", acceptRecord, func(r *AuditRecord) { r.Client = strings.Repeat("k", 33) + ":" + strings.Repeat("a", 32) }, "client"},
		{"client key id bad character", acceptRecord, func(r *AuditRecord) { r.Client = "k.1:" + strings.Repeat("a", 32) }, "client"},
		{"client two colons", acceptRecord, func(r *AuditRecord) { r.Client = "k1:" + strings.Repeat("a", 16) + ":" + strings.Repeat("a", 15) }, "client"},
		{"stage zero", acceptRecord, func(r *AuditRecord) { r.Stage = 0 }, "stage"},
		{"stage out of range", acceptRecord, func(r *AuditRecord) { r.Stage = 9 }, "stage"},
		{"scheme upper case", requestRecord, func(r *AuditRecord) { r.Scheme = "Gemini" }, "scheme"},
		{"scheme with colon", requestRecord, func(r *AuditRecord) { r.Scheme = "gemini:" }, "scheme"},
		{"host invalid UTF-8", requestRecord, func(r *AuditRecord) { r.Host = "ex\xc3ample.org" }, "host"},
		{"host too long", requestRecord, func(r *AuditRecord) { r.Host = strings.Repeat("h", maxHostBytes+1) }, "host"},
		{"host control character", requestRecord, func(r *AuditRecord) { r.Host = "example.org\r\n" }, "host"},
		{"path relative", requestRecord, func(r *AuditRecord) { r.Path = "app/" }, "path"},
		{"path with query", requestRecord, func(r *AuditRecord) { r.Path = "/search?name=alice" }, "path"},
		{"path invalid UTF-8", requestRecord, func(r *AuditRecord) { r.Path = "/\xff" }, "path"},
		{"path C1 control", requestRecord, func(r *AuditRecord) { r.Path = "/\u009b" }, "path"},
		{"status 9", requestRecord, func(r *AuditRecord) { r.Status = 9 }, "status"},
		{"status 70", requestRecord, func(r *AuditRecord) { r.Status = 70 }, "status"},
		{"status negative", requestRecord, func(r *AuditRecord) { r.Status = -20 }, "status"},
		{"status 0 at request", requestRecord, func(r *AuditRecord) { r.Status = 0 }, "status"},
		{"status sent at accept", acceptRecord, func(r *AuditRecord) { r.Status = 44 }, "status"},
		{"reason missing", acceptRecord, func(r *AuditRecord) { r.Reason = "" }, "reason"},
		{"reason upper case", acceptRecord, func(r *AuditRecord) { r.Reason = "Banned" }, "reason"},
		{"reason with space", acceptRecord, func(r *AuditRecord) { r.Reason = "rate limited" }, "reason"},
		{"reason too long", acceptRecord, func(r *AuditRecord) { r.Reason = strings.Repeat("r", maxReasonBytes+1) }, "reason"},
		{"cert without prefix", requestRecord, func(r *AuditRecord) { r.Cert = testCert[len("sha256:"):] }, "cert"},
		{"cert spki prefix", requestRecord, func(r *AuditRecord) { r.Cert = "spki-" + testCert }, "cert"},
		{"cert upper-case hex", requestRecord, func(r *AuditRecord) { r.Cert = strings.ToUpper(testCert[:8]) + testCert[8:] }, "cert"},
		{"cert short", requestRecord, func(r *AuditRecord) { r.Cert = testCert[:len(testCert)-2] }, "cert"},
		{"bytes negative", requestRecord, func(r *AuditRecord) { r.Bytes = -1 }, "bytes"},
		{"duration negative", requestRecord, func(r *AuditRecord) { r.Duration = -time.Microsecond }, "duration_us"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.base()
			tc.mutate(&r)
			err := r.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("Validate = %v, want ErrInvalidRecord", err)
			}
			if !strings.Contains(err.Error(), ": "+tc.field+": ") {
				t.Fatalf("Validate = %v, want a problem named %q", err, tc.field)
			}
			if strings.Count(err.Error(), "; ") != 0 {
				t.Fatalf("Validate = %v, want one problem", err)
			}
			if tc.field == "client" && r.Client != "" && strings.Contains(err.Error(), r.Client) {
				t.Fatalf("error quotes the client: %v", err)
			}
		})
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	r := requestRecord()
	r.ID, r.Client, r.Status, r.Cert = "", "203.0.113.9", 99, "md5:x"
	err := r.Validate()
	for _, field := range []string{"id", "client", "status", "cert"} {
		if err == nil || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("Validate = %v, want a problem named %q", err, field)
		}
	}
	if err != nil && strings.Contains(err.Error(), "203.0.113.9") {
		t.Errorf("error quotes the raw address: %v", err)
	}
}

func TestValidateAllocs(t *testing.T) {
	r := requestRecord()
	if n := testing.AllocsPerRun(100, func() {
		if r.Validate() != nil {
			t.Fatal("invalid")
		}
	}); n != 0 {
		t.Fatalf("Validate: %v allocs/op, want 0", n)
	}
}

func TestParseAuditRecordErrors(t *testing.T) {
	valid := string(func() []byte { r := requestRecord(); return r.AppendJSON(nil) }())
	replace := func(old, new string) string {
		t.Helper()
		if !strings.Contains(valid, old) {
			t.Fatalf("%q not in %s", old, valid)
		}
		return strings.Replace(valid, old, new, 1)
	}
	tests := []struct {
		name  string
		in    string
		field string // problem expected in the message; "" to check only ErrInvalidRecord
	}{
		{"empty input", "", ""},
		{"not JSON", "v=1 id=x", ""},
		{"null", "null", "not a JSON object"},
		{"array", "[" + valid + "]", ""},
		{"string", `"x"`, ""},
		{"two records", valid + valid, ""},
		{"trailing garbage", valid + " x", ""},
		{"missing key", replace(`"cert":"`+testCert+`",`, ""), "cert: missing"},
		{"unknown key", replace(`{"v":1,`, `{"v":1,"ip":"192.0.2.7",`), `unknown key "ip"`},
		{"key in other case", replace(`"host":`, `"Host":`), "host: missing"},
		{"null value", replace(`"host":"example.org"`, `"host":null`), "host: null"},
		{"string for integer", replace(`"status":20`, `"status":"20"`), "status: want an integer"},
		{"float for integer", replace(`"bytes":5120`, `"bytes":5120.5`), "bytes: want an integer"},
		{"exponent for integer", replace(`"bytes":5120`, `"bytes":5e3`), "bytes: want an integer"},
		{"integer for string", replace(`"reason":"allowed"`, `"reason":7`), "reason: want a string"},
		{"version 2", replace(`{"v":1,`, `{"v":2,`), "v: version 2"},
		{"version 0", replace(`{"v":1,`, `{"v":0,`), "v: version 0"},
		{"time not RFC 3339", replace(`"time":"2025-03-01T12:00:01.5Z"`, `"time":"1 March 2025"`), "time: want RFC 3339"},
		{"time without zone", replace(`"time":"2025-03-01T12:00:01.5Z"`, `"time":"2025-03-01T12:00:01.5"`), "time: want RFC 3339"},
		{"stage unknown", replace(`"stage":"request"`, `"stage":"handshake"`), "stage: want accept or request"},
		{"duration overflows nanoseconds", replace(`"duration_us":12345`, `"duration_us":9223372036854776`), "duration_us: out of range"},
		{"status overflows int64", replace(`"status":20`, `"status":99999999999999999999`), "status: want an integer"},
		{"raw IP client", replace(testClient, "192.0.2.7"), "client: raw IP address"},
		{"query in path", replace(`"/app/%E2%9C%93/"`, `"/app/?q=secret"`), "path: holds a query"},
		{"invalid UTF-8", replace("example.org", "ex\xffample.org"), "not valid UTF-8"},
		{"negative bytes", replace(`"bytes":5120`, `"bytes":-1`), "bytes: negative"},
		{"count of one", replace(`"duration_us":12345}`, `"duration_us":12345,"count":1}`), "count: want 2 or more"},
		{"count zero", replace(`"duration_us":12345}`, `"duration_us":12345,"count":0}`), "count: want 2 or more"},
		{"count null", replace(`"duration_us":12345}`, `"duration_us":12345,"count":null}`), "count: null"},
		{"count string", replace(`"duration_us":12345}`, `"duration_us":12345,"count":"3"}`), "count: want an integer"},
		{"count at request", replace(`"duration_us":12345}`, `"duration_us":12345,"count":3}`), "count: merged records are refusals at accept only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseAuditRecord([]byte(tc.in))
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("ParseAuditRecord(%s) = %+v, %v; want ErrInvalidRecord", tc.in, r, err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not mention %q", err, tc.field)
			}
			if !recordsEqual(r, AuditRecord{}) {
				t.Fatalf("record %+v returned with an error", r)
			}
		})
	}
}

func TestParseAuditRecordTimeOffset(t *testing.T) {
	want := acceptRecord()
	line := bytes.Replace(want.AppendJSON(nil), []byte(`"2025-03-01T12:00:00.123456789Z"`), []byte(`"2025-03-01T13:30:00.123456789+01:30"`), 1)
	got, err := ParseAuditRecord(line)
	if err != nil {
		t.Fatal(err)
	}
	if got.Time != want.Time {
		t.Fatalf("time = %v, want %v in UTC", got.Time, want.Time)
	}
}

func TestParseAuditRecordWhitespace(t *testing.T) {
	r := acceptRecord()
	line := "  \t" + string(r.AppendJSON(nil)) + "\r\n"
	if _, err := ParseAuditRecord([]byte(line)); err != nil {
		t.Fatal(err)
	}
}
