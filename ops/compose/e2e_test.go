package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestE2ECluster is the failure suite of the compose cluster: one stack,
// the scenarios in order, each bounded in time and printing its figures
// (lines starting "figure:").
func TestE2ECluster(t *testing.T) {
	s := newStack(t)
	steps := []struct {
		name string
		fn   func(*testing.T, *stack)
	}{
		{"BanPropagation", scenarioPropagation},
		{"Metrics", scenarioMetrics},
		{"LeaderKilledDuringBurst", scenarioLeaderKill},
		{"PartitionAndAudit", scenarioPartition},
		{"RollingRestart", scenarioRollingRestart},
		{"StackRestart", scenarioStackRestart},
		{"DownVolumesIsANewCluster", scenarioFreshCluster},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.fn(t, s.with(t)) }) {
			return // later scenarios assume the earlier ones left a whole cluster
		}
	}
}

// with returns the stack reporting to t.
func (s *stack) with(t *testing.T) *stack {
	c := *s
	c.t = t
	return &c
}

// scenarioPropagation: a ban through node1 is refused by node2 and node3,
// measured inside the cluster's network over 200 bans.
func scenarioPropagation(t *testing.T, s *stack) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lines, wait := s.probe(ctx, "TestProbePropagation")
	for l := range lines {
		if r, ok := parseProbe(l); ok && r.Kind == "figure" {
			t.Logf("figure: %s", r.Text)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// metricsPort is where each node's /metrics is published on the host.
var metricsPort = map[string]int{"node1": 9101, "node2": 9102, "node3": 9103}

// scenarioMetrics scrapes the three published metrics ports from the host
// and parses the exposition with the Prometheus parser: one leader, the
// same term and bans everywhere, requests counted, every node ready.
func scenarioMetrics(t *testing.T, s *stack) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.mustChimalli("node1", "ban", "add", "198.51.100.1", "--for", "1h", "--reason", "e2e")
	s.waitSameState(time.Minute, nodes...)
	for _, n := range nodes {
		if _, err := gemini(ctx, hostPort[n], "/"); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	leaders := 0
	terms := map[float64]bool{}
	for _, n := range nodes {
		base := fmt.Sprintf("http://127.0.0.1:%d", metricsPort[n])
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("%s /readyz: %v", n, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /readyz: %s", n, resp.Status)
		}
		resp, err = http.Get(base + "/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", n, err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s /metrics: %v", n, err)
		}
		value := func(name string, labels map[string]string) (float64, bool) {
			f := fams[name]
			if f == nil {
				return 0, false
			}
			var sum float64
			found := false
		metrics:
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
						continue metrics
					}
				}
				found = true
				switch {
				case m.Gauge != nil:
					sum += m.GetGauge().GetValue()
				case m.Counter != nil:
					sum += m.GetCounter().GetValue()
				}
			}
			return sum, found
		}
		if v, _ := value("chimalli_raft_state", map[string]string{"state": "leader"}); v == 1 {
			leaders++
		}
		term, ok := value("chimalli_raft_term", nil)
		if !ok || term < 1 {
			t.Errorf("%s: chimalli_raft_term %v", n, term)
		}
		terms[term] = true
		if v, _ := value("chimalli_bans_active", nil); v != 1 {
			t.Errorf("%s: chimalli_bans_active %v, want 1 (the propagation scenario lifted its bans)", n, v)
		}
		if v, _ := value("chimalli_responses_total", map[string]string{"status": "20"}); v < 1 {
			t.Errorf("%s: no status-20 response counted", n)
		}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if _, err := netip.ParseAddr(l.GetValue()); err == nil {
						t.Errorf("%s: %s has an address as a label value: %s=%q", n, f.GetName(), l.GetName(), l.GetValue())
					}
				}
			}
		}
		t.Logf("figure: %s /metrics: %d families, term %v", n, len(fams), term)
	}
	if leaders != 1 || len(terms) != 1 {
		t.Errorf("%d nodes report themselves leader, terms %v: want one leader, one term", leaders, terms)
	}
}

// scenarioLeaderKill: the leader killed with SIGKILL during a burst of
// bans through the followers; a new leader, every acknowledged ban on the
// survivors, the killed node back and caught up.
func scenarioLeaderKill(t *testing.T, s *stack) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	leader := s.leader(nodes...)
	var followers []string
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	lines, wait := s.probe(ctx, "TestProbeBurst", "CHIMALLI_E2E_FOLLOWERS="+strings.Join(followers, ","))
	var (
		acked    []probeRecord
		leaders  []probeRecord
		killedAt time.Time
	)
	for l := range lines {
		r, ok := parseProbe(l)
		if !ok {
			continue
		}
		switch r.Kind {
		case "ack":
			acked = append(acked, r)
			if len(acked) == 100 && killedAt.IsZero() {
				// Times count from docker kill's return: the signal is sent
				// by then (the command itself takes a while to run).
				id := s.container(leader)
				before := time.Now()
				s.mustDocker("kill", "-s", "KILL", id)
				killedAt = time.Now()
				t.Logf("killed the leader %s after %d acknowledged bans (docker kill took %v)", leader, len(acked), killedAt.Sub(before).Round(time.Millisecond))
			}
		case "leader":
			leaders = append(leaders, r)
		case "figure":
			t.Logf("figure: %s", r.Text)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if killedAt.IsZero() {
		t.Fatal("the burst ended before the leader was killed")
	}
	// Failover: from the kill to the first time a follower names a new
	// leader; the longest pause between two acknowledged bans.
	var failover time.Duration
	for _, r := range leaders {
		at := time.Unix(0, r.At)
		if at.After(killedAt) && r.Leader != "" && r.Leader != leader {
			failover = at.Sub(killedAt)
			break
		}
	}
	if failover == 0 {
		t.Fatalf("no follower named a new leader after the kill: %+v", leaders)
	}
	var gap, firstAck time.Duration
	for i := 1; i < len(acked); i++ {
		gap = max(gap, time.Duration(acked[i].At-acked[i-1].At))
	}
	for _, r := range acked {
		if at := time.Unix(0, r.At); at.After(killedAt) {
			firstAck = at.Sub(killedAt)
			break
		}
	}
	var seen []string
	for _, r := range leaders {
		if at := time.Unix(0, r.At); at.After(killedAt.Add(-time.Second)) {
			seen = append(seen, fmt.Sprintf("%s→%q at %+v", r.Name, r.Leader, at.Sub(killedAt).Round(time.Millisecond)))
		}
	}
	t.Logf("figure: leader %s killed (SIGKILL): a new leader named %v later; first ban acknowledged after the kill %v later; longest pause between acknowledged bans %v",
		leader, failover.Round(time.Millisecond), firstAck.Round(time.Millisecond), gap.Round(time.Millisecond))
	t.Logf("leaders the followers reported around the kill: %s", strings.Join(seen, ", "))

	want := map[string]bool{}
	for _, r := range acked {
		want[r.Prefix] = true
	}
	for _, n := range followers {
		have := s.bans(n)
		for p := range want {
			if !have[p] {
				t.Errorf("%s lost the acknowledged ban %s", n, p)
			}
		}
	}
	start := time.Now()
	s.mustDocker("start", s.container(leader))
	s.waitHealthy(2*time.Minute, leader)
	hash := s.waitSameState(time.Minute, nodes...)
	have := s.bans(leader)
	for p := range want {
		if !have[p] {
			t.Errorf("%s, restarted, lacks the acknowledged ban %s", leader, p)
		}
	}
	t.Logf("figure: %s restarted, healthy and caught up (state %.12s on all three) in %v", leader, hash, time.Since(start).Round(time.Millisecond))
}

// scenarioPartition: node3 cut off from both networks keeps enforcing its
// last state and refuses nothing it admitted before; the majority keeps
// taking writes; node3's audit records of the cut reach CHIMALLI_AUDIT
// after the heal, each once; every node ends with one state.
func scenarioPartition(t *testing.T, s *stack) {
	const cut = "node3"
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	// Before the cut: alice claims /claim/ on node3 (the pin commits
	// cluster-wide); mallory's identity is made for later.
	s.mustChimalli(cut, "cert", "new", "--cn", "alice", "--out", "/data/ids")
	s.mustChimalli(cut, "cert", "new", "--cn", "mallory", "--out", "/data/ids")
	alice := []string{"get", "--cert", "/data/ids/alice.crt", "--key", "/data/ids/alice.key"}
	mallory := []string{"get", "--cert", "/data/ids/mallory.crt", "--key", "/data/ids/mallory.key"}
	if out := s.mustChimalli(cut, append(slices.Clone(alice), "gemini://localhost/claim/")...); !strings.Contains(out, "Claimed") {
		t.Fatalf("alice's claim on %s: %s", cut, out)
	}
	s.waitSameState(time.Minute, nodes...)

	networks := []string{project + "_cluster", project + "_backend"}
	id := s.container(cut)
	for _, n := range networks {
		s.mustDocker("network", "disconnect", n, id)
	}
	healed := false
	heal := func() {
		if healed {
			return
		}
		healed = true
		for _, n := range networks {
			s.mustDocker("network", "connect", "--alias", cut, n, id)
		}
	}
	defer heal()
	cutAt := time.Now()

	// The cut-off node enforces what it had: alice served, mallory 61.
	if out := s.mustChimalli(cut, append(slices.Clone(alice), "gemini://localhost/claim/")...); !strings.Contains(out, "Claimed") {
		t.Errorf("cut off, %s refuses alice, who owns /claim/: %s", cut, out)
	}
	out, _ := s.chimalli(cut, append(slices.Clone(mallory), "gemini://localhost/claim/")...)
	if !strings.Contains(out, "61") {
		t.Errorf("cut off, %s let mallory into alice's /claim/: %s", cut, out)
	}
	// Audit records written while cut off.
	const records = 20
	for i := range records {
		s.chimalli(cut, "get", fmt.Sprintf("gemini://localhost/e2e-audit-%s-%d", run, i)) //nolint:errcheck // 51: the record is what counts
	}
	// The majority takes writes; the cut-off node does not see them.
	majorityBan := "198.51.100.77/32"
	start := time.Now()
	s.mustChimalli("node1", "ban", "add", majorityBan, "--for", "1h", "--reason", "e2e")
	t.Logf("figure: with %s cut off, a ban through node1 committed in %v (docker exec included)", cut, time.Since(start).Round(time.Millisecond))
	if !s.bans("node2")[majorityBan] {
		t.Errorf("node2 lacks the majority's ban")
	}
	if s.bans(cut)[majorityBan] {
		t.Errorf("%s, cut off, has a ban it cannot have received", cut)
	}
	heal()
	hash := s.waitSameState(2*time.Minute, nodes...)
	t.Logf("figure: cut off for %v; after the heal all three report state %.12s within %v", time.Since(cutAt).Round(time.Second), hash, time.Since(start).Round(time.Millisecond))
	if !s.bans(cut)[majorityBan] {
		t.Errorf("%s lacks the majority's ban after the heal", cut)
	}

	// Audit: exactly the records of the cut, each once, in CHIMALLI_AUDIT.
	got := auditPaths(t, s, cut, "/e2e-audit-"+run+"-", records, 2*time.Minute)
	for i := range records {
		p := fmt.Sprintf("/e2e-audit-%s-%d", run, i)
		switch got[p] {
		case 1:
		case 0:
			t.Errorf("audit record of %s lost", p)
		default:
			t.Errorf("audit record of %s stored %d times", p, got[p])
		}
	}
	s.waitHealthy(time.Minute, cut)
}

// auditPaths reads CHIMALLI_AUDIT from the host as an operator does, with
// `chimalli audit tail --all --no-follow --json` through node1's published
// NATS port and the admin identity in the stack's .cluster, until it holds
// want records of node whose path starts with prefix (or limit passes),
// and counts them by path and by record id (a duplicate id counts twice).
func auditPaths(t *testing.T, s *stack, node, prefix string, want int, limit time.Duration) map[string]int {
	t.Helper()
	var (
		counts map[string]int
		ids    map[string]int
		total  int
		tries  int
		last   string
		start  = time.Now()
	)
	deadline := start.Add(limit)
	for {
		tries++
		counts, ids, total = map[string]int{}, map[string]int{}, 0
		out, err := s.output(s.bin, "audit", "tail", "--nats", "tls://127.0.0.1:4222",
			"--certs", filepath.Join(s.dir, ".cluster"), "--all", "--no-follow", "--json", "--node", node)
		if err == nil {
			for line := range strings.Lines(out) {
				var rec struct {
					ID   string `json:"id"`
					Path string `json:"path"`
				}
				if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Path, prefix) {
					continue
				}
				counts[rec.Path]++
				ids[rec.ID]++
				total++
			}
		} else {
			last = strings.TrimSpace(out)
		}
		if total >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("audit record %s stored %d times", id, n)
		}
	}
	if total < want && last != "" {
		t.Logf("the last failed read: %s", last)
	}
	t.Logf("figure: %d audit records written on %s while cut off: %d in CHIMALLI_AUDIT after the heal, %d distinct ids; read with chimalli audit tail %v after the nodes agreed (%d tries)",
		want, node, total, len(ids), time.Since(start).Round(time.Second), tries)
	return counts
}

// scenarioRollingRestart restarts node1, node2, node3 in turn (SIGTERM,
// then start, waiting for health) while the host sends requests to all
// three ports. The policy: a node drains its requests in flight when told
// to stop and takes no new ones until it is healthy again; clients retry
// another node. So a request may fail only on the port of the node being
// restarted, between the restart command and its health check passing.
func scenarioRollingRestart(t *testing.T, s *stack) {
	type result struct {
		port int
		at   time.Time
		err  error
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	for _, n := range nodes {
		port := hostPort[n]
		for range 2 { // two clients per port
			wg.Go(func() {
				for ctx.Err() == nil {
					rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
					line, err := gemini(rctx, port, "/")
					rcancel()
					if ctx.Err() != nil {
						return
					}
					if err == nil && !strings.HasPrefix(line, "20 ") {
						err = fmt.Errorf("status %q", line)
					}
					mu.Lock()
					results = append(results, result{port, time.Now(), err})
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	type window struct {
		node       string
		start, end time.Time
	}
	var windows []window
	time.Sleep(2 * time.Second) // traffic before the first restart
	for _, n := range nodes {
		w := window{node: n, start: time.Now()}
		s.mustRun("restart", "-t", "15", n)
		s.waitHealthy(2*time.Minute, n)
		w.end = time.Now()
		windows = append(windows, w)
		time.Sleep(time.Second)
	}
	cancel()
	wg.Wait()

	total := map[int]int{}
	failed := map[int]int{}
	for _, r := range results {
		total[r.port]++
		if r.err == nil {
			continue
		}
		failed[r.port]++
		allowed := false
		for _, w := range windows {
			if hostPort[w.node] == r.port && !r.at.Before(w.start) && !r.at.After(w.end.Add(time.Second)) {
				allowed = true
			}
		}
		if !allowed {
			t.Errorf("a request to port %d failed at %s, outside its node's restart: %v", r.port, r.at.Format(time.RFC3339Nano), r.err)
		}
	}
	for _, w := range windows {
		p := hostPort[w.node]
		t.Logf("figure: rolling restart: %s down-to-healthy %v; requests to it %d, failed %d; to the others: none failed outside their own restart",
			w.node, w.end.Sub(w.start).Round(time.Millisecond), total[p], failed[p])
	}
	if len(results) < 100 {
		t.Errorf("only %d requests made during the rolling restart", len(results))
	}
	s.waitSameState(time.Minute, nodes...)
}

// scenarioStackRestart: docker-compose stop, then up: every node comes
// back with the same bans, rules and pins.
func scenarioStackRestart(t *testing.T, s *stack) {
	before := map[string]map[string]bool{}
	type counts struct{ bans, rules, pins int }
	var want counts
	for i, n := range nodes {
		before[n] = s.bans(n)
		st, err := s.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = counts{st.Bans, st.Rules, st.Pins}
		}
	}
	if len(before["node1"]) < 400 {
		t.Fatalf("node1 lists %d bans before the restart; the earlier scenarios made over 400", len(before["node1"]))
	}
	start := time.Now()
	s.mustRun("stop", "-t", "15")
	s.mustRun("up", "-d")
	s.waitHealthy(3*time.Minute, nodes...)
	t.Logf("figure: whole stack stopped and started, three nodes healthy in %v", time.Since(start).Round(time.Millisecond))
	s.waitSameState(time.Minute, nodes...)
	for _, n := range nodes {
		after := s.bans(n)
		if !maps.Equal(after, before["node1"]) {
			t.Errorf("%s: %d bans after the restart, %d before", n, len(after), len(before["node1"]))
		}
		st, err := s.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := (counts{st.Bans, st.Rules, st.Pins}); got.rules != want.rules || got.pins != want.pins {
			t.Errorf("%s: %+v after the restart, %+v before", n, got, want)
		}
	}
}

// scenarioFreshCluster: docker-compose down -v, then up: a new, empty
// cluster (the certificates in .cluster are kept and reused).
func scenarioFreshCluster(t *testing.T, s *stack) {
	old, err := s.status("node1")
	if err != nil {
		t.Fatal(err)
	}
	s.mustRun("down", "-v")
	start := time.Now()
	s.mustRun("up", "-d")
	s.waitHealthy(3*time.Minute, nodes...)
	t.Logf("figure: after down -v, a new cluster up and healthy in %v", time.Since(start).Round(time.Millisecond))
	s.waitSameState(time.Minute, nodes...)
	for _, n := range nodes {
		st, err := s.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bans != 0 || st.Pins != 0 || st.Rules != 0 || st.StateHash == old.StateHash {
			t.Errorf("%s after down -v: %d bans, %d rules, %d pins, state %.12s (before: %.12s): want a new, empty cluster",
				n, st.Bans, st.Rules, st.Pins, st.StateHash, old.StateHash)
		}
	}
}
