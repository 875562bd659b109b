package bench

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleReport runs a short count-mode run with mixed statuses and errors.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	resps := []string{"20 text/gemini\r\nbody\n", "51 not found\r\n", "oops\r\n"}
	s := startServer(t, serverConfig(t), func(n int64, _ string, tc *tls.Conn, _ net.Conn) {
		_, _ = tc.Write([]byte(resps[n%3]))
	})
	o := testOptions(s.url("/"))
	o.Requests = 9
	o.Concurrency = 2
	return runBench(t, o)
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decode: %v\n%s", err, buf.Bytes())
	}
	if !reflect.DeepEqual(*rep, back) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", back, *rep)
	}
	if back.Schema != SchemaVersion || back.Status["20"] != 3 || back.ErrorsByKind["bad_header"] != 3 {
		t.Errorf("unexpected content: schema %q status %v errors %v", back.Schema, back.Status, back.ErrorsByKind)
	}
}

func TestReportJSONFieldNamesAreSnakeCase(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport(t).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				// Status maps are keyed by code ("20") and class ("2x").
				if !snake.MatchString(k) && path != ".status" && path != ".status_class" {
					t.Errorf("field %s.%s is not snake_case", path, k)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		}
	}
	walk("", m)
	for _, k := range []string{"schema", "requests_per_second", "errors_by_kind", "latency", "handshake", "status_class", "unsent"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
	lat, _ := m["latency"].(map[string]any)
	for _, k := range []string{"count", "mean_us", "min_us", "p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency field %q missing", k)
		}
	}
}

func TestReportText(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport(t).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"latency", "handshake", "mean", "p50", "p90", "p99", "p99.9", "max",
		"status", "20=3", "51=3", "class", "2x=3", "errors", "bad_header=3", "req/s", "sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportEmptyRun(t *testing.T) {
	// A run with nothing measured still renders, with zero summaries.
	r := &runner{o: testOptions("gemini://localhost/"), now: time.Now}
	r.o.Warmup = time.Hour
	r.start = time.Now()
	r.measureFrom = r.start.Add(time.Hour)
	rep := r.report(r.start, true)
	if rep.Requests != 0 || rep.DurationSeconds != 0 || rep.RequestsPerSecond != 0 || rep.Latency != (Summary{}) {
		t.Errorf("empty report %+v", rep)
	}
	if len(rep.ErrorsByKind) != int(numKinds) || rep.Status == nil {
		t.Errorf("maps not initialised: %v %v", rep.ErrorsByKind, rep.Status)
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "interrupted") {
		t.Errorf("text of an interrupted run does not say so:\n%s", buf.String())
	}
}

func TestFormatUnits(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatUS(850), "850µs"},
		{formatUS(1500), "1.50ms"},
		{formatUS(2_500_000), "2.50s"},
		{formatBytes(512), "512 B"},
		{formatBytes(1536), "1.5 KiB"},
		{formatBytes(3 << 20), "3.0 MiB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
