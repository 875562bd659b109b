package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeSources is what cmd/node adapts from the real components, made up.
func fakeSources(raft Raft) Sources {
	return Sources{
		Info: Info{NodeID: "edge-1", Version: "v1.2.3"},
		Gateway: func() Gateway {
			return Gateway{
				Accepted: 40, Handshakes: 30, Resumed: 7, HandshakeFailures: 2, RequestTimeouts: 1,
				RefusedAtAccept: map[string]uint64{"banned": 3, "rate_limited_hard": 4},
				Requests:        map[string]uint64{"allowed": 20, "rate_limited": 5, "not_found": 2},
				Responses:       map[int]uint64{20: 20, 44: 5, 51: 2},
				OpenConnections: 6,
			}
		},
		Raft:       func() Raft { return raft },
		ActiveBans: func() int { return 9 },
		AuditPublisher: func() AuditPublisher {
			return AuditPublisher{Published: 100, Spooled: 12, PublishErrors: 3, Dropped: 1, SpoolDropped: 2, SpoolBytes: 4096}
		},
		AuditLog:          func() AuditLog { return AuditLog{Written: 50, WriteErrors: 1} },
		ConflictPublisher: func() Publisher { return Publisher{Published: 2, Errors: 1, Dropped: 4} },
		StatePublisher:    func() Publisher { return Publisher{Published: 8, Errors: 5} },
	}
}

func leaderRaft() Raft {
	return Raft{State: StateLeader, Term: 3, Leader: "edge-1", HeartbeatTimeout: 500 * time.Millisecond,
		CommitIndex: 42, AppliedIndex: 42, LastIndex: 42}
}

// serve runs the ops listener for src on a loopback port.
func serve(t *testing.T, src Sources) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := func() error { return Ready(src.Raft()) }
	s := Serve(ln, Handler(NewRegistry(src), ready, nil), nil)
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include labels ("k=v" pairs), failing unless exactly one matches and
// the family has type typ.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	if f.GetType() != typ {
		t.Fatalf("%s is a %s, want %s", name, f.GetType(), typ)
	}
	if f.GetHelp() == "" {
		t.Errorf("%s has no HELP", name)
	}
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d samples match, want 1", name, labels, len(found))
	}
	if typ == dto.MetricType_COUNTER {
		return found[0].GetCounter().GetValue()
	}
	return found[0].GetGauge().GetValue()
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

const (
	counter = dto.MetricType_COUNTER
	gauge   = dto.MetricType_GAUGE
)

func TestMetricsExposition(t *testing.T) {
	base := serve(t, fakeSources(leaderRaft()))
	fams := scrape(t, base)
	checkNoAddresses(t, fams)
	for _, c := range []struct {
		name   string
		typ    dto.MetricType
		labels []string
		want   float64
	}{
		{"chimalli_node_info", gauge, []string{"node_id=edge-1", "version=v1.2.3"}, 1},
		{"chimalli_connections_accepted_total", counter, nil, 40},
		{"chimalli_connections_refused_total", counter, []string{"reason=banned"}, 3},
		{"chimalli_connections_open", gauge, nil, 6},
		{"chimalli_tls_handshakes_total", counter, nil, 30},
		{"chimalli_tls_handshakes_resumed_total", counter, nil, 7},
		{"chimalli_tls_handshake_failures_total", counter, nil, 2},
		{"chimalli_request_timeouts_total", counter, nil, 1},
		{"chimalli_requests_total", counter, []string{"decision=allowed"}, 20},
		{"chimalli_requests_total", counter, []string{"decision=not_found"}, 2},
		{"chimalli_responses_total", counter, []string{"status=44"}, 5},
		{"chimalli_rate_limited_total", counter, []string{"limit=soft"}, 5},
		{"chimalli_rate_limited_total", counter, []string{"limit=hard"}, 4},
		{"chimalli_bans_active", gauge, nil, 9},
		{"chimalli_raft_state", gauge, []string{"state=leader"}, 1},
		{"chimalli_raft_state", gauge, []string{"state=follower"}, 0},
		{"chimalli_raft_term", gauge, nil, 3},
		{"chimalli_raft_commit_index", gauge, nil, 42},
		{"chimalli_raft_applied_index", gauge, nil, 42},
		{"chimalli_raft_last_index", gauge, nil, 42},
		{"chimalli_raft_leader_known", gauge, nil, 1},
		{"chimalli_raft_last_contact_seconds", gauge, nil, 0},
		{"chimalli_ready", gauge, nil, 1},
		{"chimalli_nats_published_total", counter, []string{"publisher=audit"}, 100},
		{"chimalli_nats_publish_errors_total", counter, []string{"publisher=audit"}, 3},
		{"chimalli_nats_publish_errors_total", counter, []string{"publisher=conflict"}, 1},
		{"chimalli_nats_publish_errors_total", counter, []string{"publisher=state"}, 5},
		{"chimalli_nats_publish_dropped_total", counter, []string{"publisher=conflict"}, 4},
		{"chimalli_audit_records_spooled_total", counter, nil, 12},
		{"chimalli_audit_spool_bytes", gauge, nil, 4096},
		{"chimalli_audit_records_dropped_total", counter, []string{"sink=nats", "cause=buffer_full"}, 1},
		{"chimalli_audit_records_dropped_total", counter, []string{"sink=nats", "cause=spool_full"}, 2},
		{"chimalli_audit_records_dropped_total", counter, []string{"sink=file", "cause=write_error"}, 1},
		{"chimalli_audit_file_records_written_total", counter, nil, 50},
	} {
		if got := value(t, fams, c.name, c.typ, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The Go runtime and process collectors are there too.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// checkNoAddresses fails if any label value parses as an IP address, a
// prefix or an address with a port: client addresses never become labels.
func checkNoAddresses(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				v := lp.GetValue()
				_, errA := netip.ParseAddr(v)
				_, errP := netip.ParsePrefix(v)
				_, errAP := netip.ParseAddrPort(v)
				if errA == nil || errP == nil || errAP == nil {
					t.Errorf("%s{%s=%q}: a label value is an address", name, lp.GetName(), v)
				}
			}
		}
	}
}

func TestMetricsLeaveOutWhatIsMissing(t *testing.T) {
	r := Raft{State: StateCandidate, Term: 2, LastContact: -1, HeartbeatTimeout: time.Second}
	src := Sources{Info: Info{NodeID: "n", Version: "dev"}, Raft: func() Raft { return r }}
	fams := scrape(t, serve(t, src))
	for _, name := range []string{"chimalli_raft_last_contact_seconds", "chimalli_requests_total", "chimalli_audit_spool_bytes", "chimalli_bans_active"} {
		if fams[name] != nil {
			t.Errorf("%s exported without its source", name)
		}
	}
	if v := value(t, fams, "chimalli_raft_state", gauge, "state=candidate"); v != 1 {
		t.Errorf("candidate state = %v", v)
	}
	if v := value(t, fams, "chimalli_ready", gauge); v != 0 {
		t.Errorf("ready = %v for a candidate", v)
	}
}

func TestHealthAndReadyEndpoints(t *testing.T) {
	r := leaderRaft()
	src := fakeSources(r)
	raft := &r
	src.Raft = func() Raft { return *raft }
	base := serve(t, src)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	notReady := r
	notReady.Leader, notReady.State = "", StateFollower
	*raft = notReady
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: no leader known\n" {
		t.Errorf("/readyz without a leader: %d %q", code, body)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
}
