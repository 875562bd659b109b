package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chimalli/chimalli/raftstore"
)

// AuditVersion is the schema version written in every record ("v").
const AuditVersion = 1

// Limits on the free-text fields of an audit record, in bytes. Host and
// path cannot be longer than a Gemini request line.
const (
	maxIDBytes     = 256
	maxNodeBytes   = 128
	maxHostBytes   = 1024
	maxPathBytes   = 1024
	maxReasonBytes = 64
	maxSchemeBytes = 32
)

// ErrInvalidRecord is wrapped by the errors of Validate and
// ParseAuditRecord, whatever the problem.
var ErrInvalidRecord = errors.New("invalid audit record")

// Stage says where a connection ended. The zero value is no stage and is
// invalid in a record.
type Stage uint8

// The stages a connection can end at.
const (
	StageAccept  Stage = iota + 1 // refused at accept, before any TLS handshake: no status was sent
	StageRequest                  // a request line was read (or failed to parse) and answered
	stageEnd
)

var stageNames = [stageEnd]string{
	StageAccept:  "accept",
	StageRequest: "request",
}

// String returns the name of s as written in records ("accept",
// "request"), or "stage(N)" for an invalid value.
func (s Stage) String() string {
	if s.valid() {
		return stageNames[s]
	}
	return "stage(" + strconv.Itoa(int(s)) + ")"
}

func (s Stage) valid() bool { return s > 0 && s < stageEnd }

// appendStage appends s.String() to dst without allocating.
func appendStage(dst []byte, s Stage) []byte {
	if s.valid() {
		return append(dst, stageNames[s]...)
	}
	dst = append(dst, "stage("...)
	dst = strconv.AppendUint(dst, uint64(s), 10)
	return append(dst, ')')
}

// ParseStage returns the Stage named name, and false for an unknown name.
func ParseStage(name string) (Stage, bool) {
	for s := StageAccept; s < stageEnd; s++ {
		if stageNames[s] == name {
			return s, true
		}
	}
	return 0, false
}

// AuditRecord is the audit record of one client connection: where it
// ended, what it asked for and what it got. It names the client only by
// its keyed hash and never records a query string.
type AuditRecord struct {
	ID       string        // "<node>/<boot>/<seq>": unique per node lifetime; the NATS Nats-Msg-Id
	Time     time.Time     // when the connection was accepted; written in UTC
	Node     string        // node that served the connection
	Client   string        // IPHasher output "<key id>:<32 hex>"; never a raw address
	Stage    Stage         // where the connection ended
	Scheme   string        // "gemini", "titan", or "" (accept stage, unparsable line)
	Host     string        // normalised host, "" when unknown
	Path     string        // canonical path without the query, "" when unknown
	Status   int           // Gemini status sent (10..69); 0 when refused at accept
	Reason   string        // abstract reason, a token [a-z0-9_]+ ("allowed", "banned", …)
	Cert     string        // client certificate fingerprint "sha256:<64 hex>", or ""
	Bytes    int64         // response bytes written, header and body
	Duration time.Duration // accept to close; written in whole microseconds
	// Count is how many refusals at accept this record stands for: the
	// AuditPublisher merges a flood's refusals of one client, for one
	// reason, within one second, into one record. 0 and 1 mean one; the
	// "count" key is written only above 1, and only at StageAccept.
	Count int
}

// AppendJSON appends r to dst as one JSON object on one line, without a
// trailing newline. Every key is always present, in a fixed order:
//
//	{"v":1,"id":…,"time":…,"node":…,"client":…,"stage":…,"scheme":…,
//	 "host":…,"path":…,"status":…,"reason":…,"cert":…,"bytes":…,"duration_us":…}
//
// A merged record (Count above 1) has one more key at the end, "count".
//
// Time is RFC 3339 with nanoseconds, in UTC; Duration is truncated to
// whole microseconds. Strings are escaped so that the output is valid JSON
// whatever they hold: invalid UTF-8 becomes U+FFFD, and control characters,
// U+2028 and U+2029 are written as \u escapes. AppendJSON does not
// validate r and does not allocate when dst has room.
func (r *AuditRecord) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, AuditVersion, 10)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, r.ID)
	dst = append(dst, `,"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","node":`...)
	dst = appendJSONString(dst, r.Node)
	dst = append(dst, `,"client":`...)
	dst = appendJSONString(dst, r.Client)
	dst = append(dst, `,"stage":"`...)
	dst = appendStage(dst, r.Stage)
	dst = append(dst, `","scheme":`...)
	dst = appendJSONString(dst, r.Scheme)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, r.Host)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, r.Path)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendJSONString(dst, r.Reason)
	dst = append(dst, `,"cert":`...)
	dst = appendJSONString(dst, r.Cert)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, r.Bytes, 10)
	dst = append(dst, `,"duration_us":`...)
	dst = strconv.AppendInt(dst, r.Duration.Microseconds(), 10)
	if r.Count > 1 {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendInt(dst, int64(r.Count), 10)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Bytes that are not valid
// UTF-8 become \ufffd, one per byte. C0 and C1 controls and DEL are
// escaped (a terminal showing the file cannot be driven by a record), and
// so are U+2028 and U+2029, which some JavaScript parsers take for line
// ends.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r >= 0x80 && r <= 0x9f:
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// problems collects what is wrong with a record, one "field: problem"
// string each. It stays nil, and costs nothing, while all is well.
type problems []string

func (p *problems) add(field, msg string) { *p = append(*p, field+": "+msg) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidRecord, strings.Join(p, "; "))
}

// text checks a free-text field: valid UTF-8, no control characters, at
// most limit bytes, and present when required. Messages never quote the
// value.
func (p *problems) text(field, s string, limit int, required bool) {
	switch {
	case s == "":
		if required {
			p.add(field, "missing")
		}
	case len(s) > limit:
		p.add(field, "longer than "+strconv.Itoa(limit)+" bytes")
	case !utf8.ValidString(s):
		p.add(field, "not valid UTF-8")
	case hasControl(s):
		p.add(field, "holds a control character")
	}
}

// hasControl reports whether s (valid UTF-8) holds a C0 or C1 control
// character or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return true
		}
		// C1 controls U+0080..U+009F are encoded as C2 80..C2 9F.
		if c == 0xc2 && i+1 < len(s) && s[i+1] <= 0x9f {
			return true
		}
	}
	return false
}

// Validate reports every problem of r, each named by its JSON key, in one
// error wrapping ErrInvalidRecord; nil when r is a valid record. The error
// never quotes the record's strings, so it is safe to log even when a
// field holds what it must not (a raw address in client, say).
//
// Validate does not allocate when r is valid.
func (r *AuditRecord) Validate() error {
	var p problems
	p.text("id", r.ID, maxIDBytes, true)
	if r.Time.IsZero() {
		p.add("time", "missing")
	} else if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
		p.add("time", "year outside 1..9999")
	}
	p.text("node", r.Node, maxNodeBytes, true)
	switch {
	case isClientHash(r.Client): // first: parsing an address allocates its error
	case r.Client == "":
		p.add("client", "missing")
	case isIPAddress(r.Client):
		p.add("client", "raw IP address, want a keyed hash")
	default:
		p.add("client", "want <key id>:<32 lower-case hex>")
	}
	if !r.Stage.valid() {
		p.add("stage", "want accept or request")
	}
	if r.Scheme != "" && !isScheme(r.Scheme) {
		p.add("scheme", "want a lower-case URL scheme")
	}
	p.text("host", r.Host, maxHostBytes, false)
	p.text("path", r.Path, maxPathBytes, false)
	if r.Path != "" {
		if r.Path[0] != '/' {
			p.add("path", "does not start with /")
		}
		if strings.IndexByte(r.Path, '?') >= 0 {
			p.add("path", "holds a query")
		}
	}
	switch {
	case r.Status != 0 && (r.Status < 10 || r.Status > 69):
		p.add("status", strconv.Itoa(r.Status)+" outside 10..69")
	case r.Status == 0 && r.Stage == StageRequest:
		p.add("status", "0 at stage request, want 10..69")
	case r.Status != 0 && r.Stage == StageAccept:
		p.add("status", "sent at stage accept, want 0")
	}
	switch {
	case r.Reason == "":
		p.add("reason", "missing")
	case !isToken(r.Reason, maxReasonBytes):
		p.add("reason", "want [a-z0-9_]{1,64}")
	}
	if r.Cert != "" && !isCertFingerprint(r.Cert) {
		p.add("cert", "want sha256:<64 lower-case hex>")
	}
	if r.Bytes < 0 {
		p.add("bytes", "negative")
	}
	if r.Duration < 0 {
		p.add("duration_us", "negative")
	}
	switch {
	case r.Count < 0:
		p.add("count", "negative")
	case r.Count > 1 && r.Stage != StageAccept:
		p.add("count", "merged records are refusals at accept only")
	}
	return p.err()
}

// isIPAddress reports whether s parses as an IP address, with or without
// a port or zone.
func isIPAddress(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

// isClientHash reports whether s looks like IPHasher output:
// "<key id>:<32 lower-case hex>" with a key id of [A-Za-z0-9_-]{1,32}.
func isClientHash(s string) bool {
	id, sum, ok := strings.Cut(s, ":")
	return ok && raftstore.ValidAuditKeyID(id) && len(sum) == 2*HashBytes && isLowerHex(sum)
}

// isCertFingerprint reports whether s is "sha256:<64 lower-case hex>".
func isCertFingerprint(s string) bool {
	sum, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(sum) == 64 && isLowerHex(sum)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isToken reports whether s is [a-z0-9_]{1,limit}.
func isToken(s string, limit int) bool {
	if len(s) == 0 || len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isScheme reports whether s is a lower-case URL scheme (RFC 3986 §3.1)
// of at most maxSchemeBytes.
func isScheme(s string) bool {
	if len(s) == 0 || len(s) > maxSchemeBytes || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ParseAuditRecord parses one record as written by AppendJSON (surrounding
// white space, such as the line's newline, is allowed) and validates it.
// It is strict: the input must be valid UTF-8, and every key must be
// present, exactly as spelled, with a value of its type and not null;
// unknown keys and a version other than AuditVersion are refused. The one
// optional key, "count", is absent for a single record (Count is then 0)
// and at least 2 when present. The time may carry any offset and is returned
// in UTC. Errors wrap ErrInvalidRecord and name each problem's key.
func ParseAuditRecord(b []byte) (AuditRecord, error) {
	if !utf8.Valid(b) { // encoding/json would quietly replace the bad bytes
		return AuditRecord{}, fmt.Errorf("%w: not valid UTF-8", ErrInvalidRecord)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return AuditRecord{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if m == nil {
		return AuditRecord{}, fmt.Errorf("%w: not a JSON object", ErrInvalidRecord)
	}
	var (
		r          AuditRecord
		p          problems
		version    int
		tm, stage  string
		durationUS int64
	)
	fields := [...]struct {
		key string
		dst any
	}{
		{"v", &version},
		{"id", &r.ID},
		{"time", &tm},
		{"node", &r.Node},
		{"client", &r.Client},
		{"stage", &stage},
		{"scheme", &r.Scheme},
		{"host", &r.Host},
		{"path", &r.Path},
		{"status", &r.Status},
		{"reason", &r.Reason},
		{"cert", &r.Cert},
		{"bytes", &r.Bytes},
		{"duration_us", &durationUS},
		{"count", &r.Count},
	}
	for _, f := range fields {
		raw, ok := m[f.key]
		switch {
		case !ok && f.key == "count": // optional: absent means one
			continue
		case !ok:
			p.add(f.key, "missing")
			continue
		case string(raw) == "null":
			p.add(f.key, "null")
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			if _, isString := f.dst.(*string); isString {
				p.add(f.key, "want a string")
			} else {
				p.add(f.key, "want an integer")
			}
			continue
		}
		switch f.key {
		case "v":
			if version != AuditVersion {
				p.add("v", "version "+strconv.Itoa(version)+", want "+strconv.Itoa(AuditVersion))
			}
		case "time":
			t, err := time.Parse(time.RFC3339Nano, tm)
			if err != nil {
				p.add("time", "want RFC 3339")
				break
			}
			r.Time = t.UTC()
		case "stage":
			s, ok := ParseStage(stage)
			if !ok {
				p.add("stage", "want accept or request")
				break
			}
			r.Stage = s
		case "duration_us":
			if durationUS > math.MaxInt64/int64(time.Microsecond) || durationUS < math.MinInt64/int64(time.Microsecond) {
				p.add("duration_us", "out of range")
				break
			}
			r.Duration = time.Duration(durationUS) * time.Microsecond
		case "count":
			if r.Count < 2 {
				p.add("count", "want 2 or more (absent means one)")
			}
		}
	}
	var unknown []string
	for k := range m {
		known := false
		for _, f := range fields {
			known = known || f.key == k
		}
		if !known {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		p = append(p, fmt.Sprintf("unknown key %.32q", k))
	}
	if err := p.err(); err != nil {
		return AuditRecord{}, err
	}
	if err := r.Validate(); err != nil {
		return AuditRecord{}, err
	}
	return r, nil
}
