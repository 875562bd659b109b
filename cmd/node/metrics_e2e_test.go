package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeNode fetches url (a /metrics endpoint) and parses the exposition.
func scrapeNode(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", url, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
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

// sample returns the value of the sample of name whose labels include
// label ("k=v", or "" for any), or -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name, label string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	k, v, _ := strings.Cut(label, "=")
	for _, m := range f.GetMetric() {
		match := label == ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				match = true
			}
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// writeMetricsConfig writes a configuration file that sets metrics.listen.
func writeMetricsConfig(t *testing.T, dir, listen string) string {
	t.Helper()
	path := filepath.Join(dir, "chimalli.yaml")
	if err := os.WriteFile(path, []byte("metrics:\n  listen: "+strconv.Quote(listen)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A node with metrics.listen serves Prometheus metrics that follow what
// it does, and /readyz; the admin socket's health agrees.
func TestE2EMetrics(t *testing.T) {
	dir := t.TempDir()
	ops := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := writeMetricsConfig(t, dir, ops)
	p := spawnNode(t, dir, "--config", cfg, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	base := "http://" + ops
	if !strings.Contains(p.banner, "metrics: "+base+"/metrics") {
		t.Fatalf("banner does not show the ops listener:\n%s", p.banner)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if out, errOut, code := chimalli(t, dir, "health"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("health: %d %q %q", code, out, errOut)
	}

	before := scrapeNode(t, base+"/metrics")
	if line, err := fetchFrom("127.0.0.31", p.addr, "/"); err != nil || !strings.HasPrefix(line, "20") {
		t.Fatalf("served request: %q, %v", line, err)
	}
	if line, err := fetchFrom("127.0.0.31", p.addr, "/missing"); err != nil || !strings.HasPrefix(line, "51") {
		t.Fatalf("missing page: %q, %v", line, err)
	}
	const banned = "127.0.0.32"
	if out, errOut, code := chimalli(t, dir, "ban", "add", banned, "--for", "1h"); code != 0 {
		t.Fatalf("ban add: %d %q %q", code, out, errOut)
	}
	if line, err := fetchFrom(banned, p.addr, "/"); err == nil || !isRefusal(err) {
		t.Fatalf("banned client: %q, %v; want a refusal", line, err)
	}

	grew := func(after map[string]*dto.MetricFamily, name, label string) bool {
		return sample(after, name, label) >= max(sample(before, name, label), 0)+1
	}
	var after map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrapeNode(t, base+"/metrics")
		if grew(after, "chimalli_responses_total", "status=20") && grew(after, "chimalli_responses_total", "status=51") &&
			grew(after, "chimalli_requests_total", "decision=allowed") && grew(after, "chimalli_requests_total", "decision=not_found") &&
			grew(after, "chimalli_connections_refused_total", "reason=banned") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request counters did not move: before %v, after %v", counts(before), counts(after))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		name, label string
		ok          func(float64) bool
		want        string
	}{
		{"chimalli_bans_active", "", func(v float64) bool { return v == 1 }, "1"},
		{"chimalli_raft_term", "", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"chimalli_raft_state", "state=leader", func(v float64) bool { return v == 1 }, "1"},
		{"chimalli_raft_leader_known", "", func(v float64) bool { return v == 1 }, "1"},
		{"chimalli_raft_commit_index", "", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"chimalli_ready", "", func(v float64) bool { return v == 1 }, "1"},
		{"chimalli_tls_handshakes_total", "", func(v float64) bool { return v >= 2 }, ">= 2"},
		{"chimalli_node_info", "", func(v float64) bool { return v == 1 }, "1"},
		{"chimalli_nats_published_total", "publisher=state", func(v float64) bool { return v >= 0 }, "present"},
		{"chimalli_audit_spool_bytes", "", func(v float64) bool { return v >= 0 }, "present"},
		{"go_goroutines", "", func(v float64) bool { return v > 0 }, "> 0"},
	} {
		if v := sample(after, c.name, c.label); !c.ok(v) {
			t.Errorf("%s{%s} = %v, want %s", c.name, c.label, v, c.want)
		}
	}
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if _, err := netip.ParseAddr(lp.GetValue()); err == nil || strings.Contains(lp.GetValue(), "127.0.0.") {
					t.Errorf("%s{%s=%q}: an address in a label", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// counts lists the request counters of a scrape, for failure messages.
func counts(fams map[string]*dto.MetricFamily) string {
	var b strings.Builder
	for _, name := range []string{"chimalli_responses_total", "chimalli_requests_total", "chimalli_connections_refused_total"} {
		for _, m := range fams[name].GetMetric() {
			fmt.Fprintf(&b, "%s%v=%v ", name, m.GetLabel(), m.GetCounter().GetValue())
		}
	}
	return b.String()
}

// A node whose metrics.listen port is taken does not start, and writes
// nothing: the port is checked with the others, first.
func TestE2EMetricsPortInUse(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := writeMetricsConfig(t, dir, taken.Addr().String())
	_, errOut, code := chimalli(t, dir, "run", "--config", cfg, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if code == 0 || !strings.Contains(errOut, "metrics.listen") {
		t.Fatalf("exit %d, stderr %q; want a metrics.listen error", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "chimalli-data")); !os.IsNotExist(err) {
		t.Fatalf("the failed start left a data directory (%v)", err)
	}
}

// Every TCP port the node binds itself reads its address the Gemini
// listener's way: 0.0.0.0 is IPv4 only. The cluster port and the ops port
// took IPv6 connections too before (Go's net.Listen makes 0.0.0.0 dual
// stack).
func TestE2EWildcardIPv4PortsAreIPv4Only(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	dir := t.TempDir()
	if out, errOut, code := chimalli(t, dir, "cluster", "init", "--nodes", "n1", "--out", "certs"); code != 0 {
		t.Fatalf("cluster init: %d %q %q", code, out, errOut)
	}
	clusterPort, opsPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`node:
  id: n1
cluster:
  listen: 0.0.0.0:%[1]d
  advertise: 127.0.0.1:%[1]d
  certs: certs
  peers: [n1=127.0.0.1:%[1]d]
metrics:
  listen: 0.0.0.0:%[2]d
`, clusterPort, opsPort)
	path := filepath.Join(dir, "chimalli.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	spawnNode(t, dir, "--config", path, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	for name, port := range map[string]int{"cluster.listen": clusterPort, "metrics.listen": opsPort} {
		c, err := net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		if err != nil {
			t.Errorf("%s 0.0.0.0:%d: IPv4 refused: %v", name, port, err)
		} else {
			c.Close()
		}
		if c, err := net.DialTimeout("tcp6", "[::1]:"+strconv.Itoa(port), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("%s 0.0.0.0:%d took an IPv6 connection", name, port)
		}
	}
}
