package compose

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
)

// probeWait is how long refusedAtAccept waits for a close.
const probeWait = time.Millisecond

// The probes run inside a container on the cluster's network (see
// stack.probe); run anywhere else they skip.

func probeOnly(t *testing.T) {
	if os.Getenv("CHIMALLI_E2E_PROBE") != "1" {
		t.Skip("a probe of the compose failure suite: it runs in a container the suite starts")
	}
}

// sock is the admin socket of a node, whose data volume the suite mounted
// at /<node>.
func sock(node string) string { return filepath.Join("/", node, "admin.sock") }

func emit(r probeRecord) {
	b, _ := json.Marshal(r)
	fmt.Printf("PROBE %s\n", b)
}

// ownIPv4 returns the probe container's address on the cluster network.
func ownIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Fatal("no IPv4 address")
	return ""
}

// handshake reports whether node's Gemini port completes a TLS handshake
// with this container (a banned client's connection is closed first).
func handshake(node string) error {
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", node+":1965", &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}) //nolint:gosec // reachability only
	if err != nil {
		return err
	}
	return conn.Close()
}

// refusedAtAccept reports whether node closes a new connection from this
// container at once, as it does a banned client's, before any handshake:
// an admitted connection waits for the ClientHello, so nothing comes back
// within the wait. Cheaper than a handshake, so it measures finer.
func refusedAtAccept(node string, wait time.Duration) bool {
	conn, err := net.DialTimeout("tcp", node+":1965", 3*time.Second)
	if err != nil {
		return true
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestProbePropagation measures what an operator's ban means: 200 times,
// it bans this container's own address through node1's admin socket and
// measures, from node1's answer, when node2 and node3 close its new
// connections before any handshake (dialling each as fast as handshakes
// complete); then lifts the ban through node1 and waits until both admit
// it again. The rate limit is raised for the suite (loadtest.yml), so every
// refusal is the ban's.
func TestProbePropagation(t *testing.T) {
	probeOnly(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const n = 200
	self := ownIPv4(t)
	peers := []string{"node2", "node3"}
	for _, peer := range peers {
		if err := handshake(peer); err != nil {
			t.Fatalf("%s refuses this container before any ban: %v", peer, err)
		}
	}
	lag := map[string][]time.Duration{}
	var fromCall, liftLag []time.Duration
	var mu sync.Mutex
	// await dials peer until admitted is what a handshake says, and
	// records how long after since that took.
	await := func(peer string, admitted bool, since time.Time, into *[]time.Duration) {
		for {
			if refusedAtAccept(peer, probeWait) != admitted {
				mu.Lock()
				*into = append(*into, time.Since(since))
				mu.Unlock()
				return
			}
			if ctx.Err() != nil {
				t.Errorf("%s: still admitted=%v: %v", peer, !admitted, ctx.Err())
				return
			}
		}
	}
	for range n {
		call := time.Now()
		if _, err := admin.AddBan(ctx, sock("node1"), admin.BanRequest{Prefix: self, Duration: "10m", Reason: "e2e"}); err != nil {
			t.Fatalf("ban this container through node1: %v", err)
		}
		returned := time.Now()
		var wg sync.WaitGroup
		for _, peer := range peers {
			wg.Go(func() {
				var d []time.Duration
				await(peer, false, returned, &d)
				mu.Lock()
				if len(d) == 1 {
					lag[peer] = append(lag[peer], d[0])
					fromCall = append(fromCall, d[0]+returned.Sub(call))
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if err := admin.LiftBan(ctx, sock("node1"), self+"/32"); err != nil {
			t.Fatalf("lift: %v", err)
		}
		lifted := time.Now()
		for _, peer := range peers {
			wg.Go(func() { await(peer, true, lifted, &liftLag) })
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	for _, peer := range peers {
		text := fmt.Sprintf("ban through node1 → %s refuses the banned client, from node1's answer, over %d bans: p50 %v p99 %v max %v",
			peer, len(lag[peer]), quantile(lag[peer], 0.5), quantile(lag[peer], 0.99), quantile(lag[peer], 1))
		emit(probeRecord{Kind: "figure", Name: "propagation_p99_" + peer, Value: quantile(lag[peer], 0.99).Seconds(), Text: text})
	}
	emit(probeRecord{Kind: "figure", Name: "propagation_from_call_p99", Value: quantile(fromCall, 0.99).Seconds(),
		Text: fmt.Sprintf("ban through node1 → refused by node2 and node3, from the call: p50 %v p99 %v; a lift admitted again: p50 %v p99 %v",
			quantile(fromCall, 0.5), quantile(fromCall, 0.99), quantile(liftLag, 0.5), quantile(liftLag, 0.99))})
	// The resolution of these figures: one probe of an admitted client.
	var hs []time.Duration
	for range 200 {
		start := time.Now()
		if refusedAtAccept("node2", probeWait) {
			t.Fatal("node2 refuses this container after the last lift")
		}
		hs = append(hs, time.Since(start))
	}
	emit(probeRecord{Kind: "figure", Name: "resolution", Text: fmt.Sprintf("resolution: one probe of an admitted connection takes p50 %v p99 %v", quantile(hs, 0.5), quantile(hs, 0.99))})
	// And a real client: banned, no handshake; lifted, a handshake.
	if _, err := admin.AddBan(ctx, sock("node1"), admin.BanRequest{Prefix: self, Duration: "10m", Reason: "e2e"}); err != nil {
		t.Fatal(err)
	}
	for _, peer := range peers {
		deadline := time.Now().Add(10 * time.Second)
		for handshake(peer) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s completes TLS handshakes with a client node1 banned", peer)
			}
		}
	}
	if err := admin.LiftBan(ctx, sock("node1"), self+"/32"); err != nil {
		t.Fatal(err)
	}
	for _, peer := range peers {
		deadline := time.Now().Add(10 * time.Second)
		for handshake(peer) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s refuses handshakes after the lift", peer)
			}
		}
	}
}

// TestProbeBurst commits bans through the two nodes named in
// CHIMALLI_E2E_FOLLOWERS, alternating, as fast as they answer, while the
// host kills the leader; it prints each acknowledged ban with its time and
// every change of the leader the followers report.
func TestProbeBurst(t *testing.T) {
	probeOnly(t)
	followers := strings.Split(os.Getenv("CHIMALLI_E2E_FOLLOWERS"), ",")
	if len(followers) != 2 {
		t.Fatalf("CHIMALLI_E2E_FOLLOWERS=%q: want two nodes", os.Getenv("CHIMALLI_E2E_FOLLOWERS"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	for _, f := range followers {
		watch.Go(func() {
			last := ""
			for watchCtx.Err() == nil {
				st, err := admin.ClusterStatus(watchCtx, sock(f))
				if err == nil && st.Leader != last {
					last = st.Leader
					emit(probeRecord{Kind: "leader", Leader: st.Leader, At: time.Now().UnixNano(), Name: f})
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	const n = 400
	failures := 0
	for i := range n {
		prefix := fmt.Sprintf("10.88.%d.%d/32", i/256, i%256)
		for attempt := 0; ; attempt++ {
			f := followers[(i+attempt)%2]
			cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := admin.AddBan(cctx, sock(f), admin.BanRequest{Prefix: prefix, Duration: "1h", Reason: "e2e"})
			ccancel()
			if err == nil {
				emit(probeRecord{Kind: "ack", Prefix: prefix, At: time.Now().UnixNano(), Name: f})
				break
			}
			failures++
			if ctx.Err() != nil {
				t.Fatalf("ban %s: %v", prefix, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopWatch()
	watch.Wait()
	emit(probeRecord{Kind: "figure", Name: "burst_failed_attempts", Value: float64(failures),
		Text: fmt.Sprintf("%d bans acknowledged; %d attempts failed and were retried", n, failures)})
}
