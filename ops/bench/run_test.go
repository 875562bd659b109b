package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

// testOptions returns options for a quiet test run against urls.
func testOptions(urls ...string) Options {
	o := DefaultOptions()
	o.URLs = urls
	o.Progress = 0
	o.Timeout = 5 * time.Second
	return o
}

// runBench runs o and fails the test on a setup error.
func runBench(t *testing.T, o Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, o, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func TestClosedLoopCountServesExactlyN(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n           int64
		concurrency int
	}{
		{"one worker", 7, 1},
		{"more workers than requests", 3, 8},
		{"many", 200, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "# hello\n"
			s := startServer(t, serverConfig(t), reply("20 text/gemini\r\n"+body))
			o := testOptions(s.url("/"))
			o.Requests = tc.n
			o.Concurrency = tc.concurrency
			rep := runBench(t, o)
			if got := s.served.Load(); got != tc.n {
				t.Errorf("server served %d requests, want %d", got, tc.n)
			}
			if rep.Requests != tc.n || rep.Responses != tc.n || rep.Errors != 0 {
				t.Errorf("report requests/responses/errors = %d/%d/%d, want %d/%d/0", rep.Requests, rep.Responses, rep.Errors, tc.n, tc.n)
			}
			if rep.Status["20"] != tc.n || rep.StatusClass["2x"] != tc.n || len(rep.Status) != 1 {
				t.Errorf("status = %v, class = %v, want only 20 and 2x = %d", rep.Status, rep.StatusClass, tc.n)
			}
			if want := tc.n * int64(len("20 text/gemini\r\n")+len(body)); rep.Bytes != want {
				t.Errorf("bytes = %d, want %d", rep.Bytes, want)
			}
			if rep.Latency.Count != tc.n || rep.Handshake.Count != tc.n {
				t.Errorf("latency count %d, handshake count %d, want %d", rep.Latency.Count, rep.Handshake.Count, tc.n)
			}
			if rep.Mode != "closed" || rep.Interrupted {
				t.Errorf("mode %q interrupted %v", rep.Mode, rep.Interrupted)
			}
			if rep.Latency.P50US <= 0 || rep.Latency.MaxUS < rep.Latency.P99US || rep.Latency.P99US < rep.Latency.P50US {
				t.Errorf("implausible latency summary %+v", rep.Latency)
			}
			if len(rep.Targets) != 1 || !strings.HasPrefix(rep.Targets[0].ServerCert, "sha256:") {
				t.Errorf("targets = %+v, want one with a fingerprint", rep.Targets)
			}
		})
	}
}

func TestDurationModeStops(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\nok\n"))
	o := testOptions(s.url("/"))
	o.Duration = 300 * time.Millisecond
	o.Concurrency = 4
	rep := runBench(t, o)
	if rep.Requests <= 0 {
		t.Fatalf("no requests in duration mode: %+v", rep)
	}
	if rep.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorsByKind)
	}
	if got := s.served.Load(); got != rep.Requests {
		t.Errorf("server served %d, report says %d", got, rep.Requests)
	}
	if rep.DurationSeconds <= 0 || rep.RequestsPerSecond <= 0 {
		t.Errorf("duration %v, req/s %v", rep.DurationSeconds, rep.RequestsPerSecond)
	}
}

func TestWarmupExcludedFromCount(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Warmup = 100 * time.Millisecond
	o.Requests = 5
	o.Concurrency = 1
	rep := runBench(t, o)
	if rep.Requests != 5 {
		t.Errorf("measured %d requests, want 5", rep.Requests)
	}
	// Warm-up requests reach the server but not the report.
	if got := s.served.Load(); got < 5 {
		t.Errorf("server served %d, want at least 5", got)
	}
	if rep.WarmupSeconds != 0.1 {
		t.Errorf("warmup_seconds = %v", rep.WarmupSeconds)
	}
}

func TestOpenLoopCount(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Rate = 500
	o.Requests = 25
	o.Concurrency = 4
	rep := runBench(t, o)
	if got := s.served.Load(); got != 25 {
		t.Errorf("server served %d, want 25", got)
	}
	if rep.Mode != "open" || rep.Requests != 25 || rep.Unsent != 0 || rep.TargetRate != 500 {
		t.Errorf("report mode %q requests %d unsent %d rate %v", rep.Mode, rep.Requests, rep.Unsent, rep.TargetRate)
	}
}

func TestOpenLoopDurationAccountsForEverySlot(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Rate = 50
	o.Duration = 200 * time.Millisecond
	o.Concurrency = 2
	rep := runBench(t, o)
	// 50/s for 0.2 s plans 10 slots: each was either run or left unsent.
	if got := rep.Requests + rep.Unsent; got != 10 {
		t.Errorf("requests %d + unsent %d = %d, want 10", rep.Requests, rep.Unsent, got)
	}
	if got := s.served.Load(); got != rep.Requests {
		t.Errorf("server served %d, report says %d", got, rep.Requests)
	}
}

func TestStatusBreakdown(t *testing.T) {
	resps := []string{"20 text/gemini\r\nbody\n", "44 5\r\n", "51 not found\r\n"}
	s := startServer(t, serverConfig(t), func(n int64, _ string, tc *tls.Conn, _ net.Conn) {
		_, _ = io.WriteString(tc, resps[n%3])
	})
	o := testOptions(s.url("/"))
	o.Requests = 30
	o.Concurrency = 3
	rep := runBench(t, o)
	wantStatus := map[string]int64{"20": 10, "44": 10, "51": 10}
	wantClass := map[string]int64{"2x": 10, "4x": 10, "5x": 10}
	if fmt.Sprint(rep.Status) != fmt.Sprint(wantStatus) || fmt.Sprint(rep.StatusClass) != fmt.Sprint(wantClass) {
		t.Errorf("status %v class %v, want %v %v", rep.Status, rep.StatusClass, wantStatus, wantClass)
	}
	if rep.Responses != 30 || rep.Errors != 0 {
		t.Errorf("responses %d errors %d", rep.Responses, rep.Errors)
	}
}

func TestErrorKinds(t *testing.T) {
	certA, certB := tofutest.LoopbackCert(t, "a"), tofutest.LoopbackCert(t, "b")
	var seen atomic.Int64
	changing := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if seen.Add(1) == 1 {
				return &certA, nil
			}
			return &certB, nil
		},
	}
	for _, tc := range []struct {
		name    string
		url     func(t *testing.T) string
		timeout time.Duration
		want    ErrorKind
		ok      int64 // successful responses among the 4 requests
	}{
		{"close without header", func(t *testing.T) string {
			return startServer(t, serverConfig(t), func(int64, string, *tls.Conn, net.Conn) {}).url("/")
		}, 0, KindReadHeader, 0},
		{"bad header", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("hello world\r\n")).url("/")
		}, 0, KindBadHeader, 0},
		// The gateway's own header rule: what a proxy would refuse is no
		// response here either.
		{"control byte in meta", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("20 text/\x00gemini\r\n")).url("/")
		}, 0, KindBadHeader, 0},
		{"two spaces after status", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("20  text/gemini\r\n")).url("/")
		}, 0, KindBadHeader, 0},
		{"meta not UTF-8", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("20 text/\xffgemini\r\n")).url("/")
		}, 0, KindBadHeader, 0},
		{"bare LF header", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("20 text/gemini\nbody")).url("/")
		}, 0, KindBadHeader, 0},
		{"header too long", func(t *testing.T) string {
			return startServer(t, serverConfig(t), reply("20 "+strings.Repeat("x", 1100)+"\r\n")).url("/")
		}, 0, KindBadHeader, 0},
		{"dead port", func(t *testing.T) string { return "gemini://" + deadAddr(t) + "/" }, 0, KindDial, 0},
		{"not TLS", func(t *testing.T) string {
			return startRaw(t, func(_ *testServer, c net.Conn) { _, _ = io.WriteString(c, "20 text/plain\r\nplain\n") }).url("/")
		}, 0, KindTLS, 0},
		{"truncated body record", func(t *testing.T) string {
			return startServer(t, serverConfig(t), func(_ int64, _ string, tc *tls.Conn, raw net.Conn) {
				_, _ = io.WriteString(tc, "20 text/plain\r\n")
				_, _ = raw.Write([]byte{23, 3, 3}) // half a record header, then EOF
				raw.Close()
			}).url("/")
		}, 0, KindReadBody, 0},
		{"no answer", func(t *testing.T) string {
			return startServer(t, serverConfig(t), func(_ int64, _ string, tc *tls.Conn, _ net.Conn) {
				_, _ = io.Copy(io.Discard, tc) // until the client gives up
			}).url("/")
		}, 200 * time.Millisecond, KindTimeout, 0},
		{"cert changes", func(t *testing.T) string {
			return startServer(t, changing, reply("20 text/plain\r\n")).url("/")
		}, 0, KindCertChanged, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(tc.url(t))
			o.Requests = 4
			o.Concurrency = 1
			if tc.timeout > 0 {
				o.Timeout = tc.timeout
			}
			rep := runBench(t, o)
			if rep.Requests != 4 || rep.Responses != tc.ok {
				t.Errorf("requests %d responses %d, want 4 and %d", rep.Requests, rep.Responses, tc.ok)
			}
			want := map[string]int64{}
			for k := range numKinds {
				want[k.String()] = 0
			}
			want[tc.want.String()] = 4 - tc.ok
			if fmt.Sprint(rep.ErrorsByKind) != fmt.Sprint(want) {
				t.Errorf("errors_by_kind = %v, want %v", rep.ErrorsByKind, want)
			}
		})
	}
}

func TestResumption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resume bool
		want   int64
	}{
		{"full handshakes by default", false, 0},
		{"resume", true, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverConfig(t)
			cfg.MinVersion = tls.VersionTLS13
			s := startServer(t, cfg, reply("20 text/plain\r\nx"))
			o := testOptions(s.url("/"))
			o.Requests = 6
			o.Concurrency = 1
			o.Resume = tc.resume
			rep := runBench(t, o)
			// One worker: every connection after the first can resume.
			if got := s.resumed.Load(); got != tc.want {
				t.Errorf("server saw %d resumed sessions, want %d", got, tc.want)
			}
			if rep.Resumed != tc.want || rep.Resume != tc.resume {
				t.Errorf("report resumed %d resume %v", rep.Resumed, rep.Resume)
			}
		})
	}
}

func TestKeyExchange(t *testing.T) {
	for _, tc := range []struct {
		name, kex string
		want      tls.CurveID
	}{
		{"default prefers hybrid", KEXDefault, tls.X25519MLKEM768},
		{"x25519", KEXX25519, tls.X25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var curve atomic.Uint32
			s := startServer(t, serverConfig(t), func(_ int64, _ string, c *tls.Conn, _ net.Conn) {
				curve.Store(uint32(c.ConnectionState().CurveID))
				_, _ = io.WriteString(c, "20 text/plain\r\n")
			})
			o := testOptions(s.url("/"))
			o.Requests = 1
			o.KeyExchange = tc.kex
			rep := runBench(t, o)
			if got := tls.CurveID(curve.Load()); got != tc.want {
				t.Errorf("negotiated %v, want %v", got, tc.want)
			}
			if rep.KeyExchange != tc.kex {
				t.Errorf("report key_exchange %q", rep.KeyExchange)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	cfg := serverConfig(t)
	cfg.ClientAuth = tls.RequestClientCert
	s := startServer(t, cfg, reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Requests = 3
	o.Concurrency = 1
	o.CertFile, o.KeyFile = tofutest.WriteKeyPair(t, "client", tofu.CertRequest{CommonName: "bench-client"})
	rep := runBench(t, o)
	if got := s.clientCert.Load(); got != 3 {
		t.Errorf("server saw %d client certificates, want 3", got)
	}
	if !rep.ClientCert || rep.Responses != 3 {
		t.Errorf("client_cert %v responses %d", rep.ClientCert, rep.Responses)
	}
}

func TestMultipleURLsRoundRobin(t *testing.T) {
	var paths [2]atomic.Int64
	s := startServer(t, serverConfig(t), func(_ int64, req string, tc *tls.Conn, _ net.Conn) {
		if strings.HasSuffix(req, "/a") {
			paths[0].Add(1)
		} else {
			paths[1].Add(1)
		}
		_, _ = io.WriteString(tc, "20 text/plain\r\n")
	})
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(list, []byte("# targets\n\n"+s.url("/b")+"  # second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions(s.url("/a"))
	o.URLsFile = list
	o.Requests = 10
	o.Concurrency = 1
	rep := runBench(t, o)
	if paths[0].Load() != 5 || paths[1].Load() != 5 {
		t.Errorf("requests per URL = %d, %d, want 5, 5", paths[0].Load(), paths[1].Load())
	}
	if len(rep.Targets) != 2 || rep.Targets[1].URL != s.url("/b") {
		t.Errorf("targets %+v", rep.Targets)
	}
}

func TestCancelReturnsPartialReport(t *testing.T) {
	started := make(chan struct{}, 1)
	s := startServer(t, serverConfig(t), func(_ int64, _ string, tc *tls.Conn, _ net.Conn) {
		select {
		case started <- struct{}{}:
		default:
		}
		_, _ = io.WriteString(tc, "20 text/plain\r\n")
	})
	o := testOptions(s.url("/"))
	o.Duration = time.Hour
	o.Concurrency = 2
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	rep, err := Run(ctx, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted {
		t.Error("report not marked interrupted")
	}
	if rep.Errors != 0 {
		t.Errorf("cancellation counted as errors: %v", rep.ErrorsByKind)
	}
}

func TestProgressOutput(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	for _, tc := range []struct {
		name  string
		quiet bool
		want  string
	}{
		{"final line", false, "done"},
		{"quiet", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(s.url("/"))
			o.Requests = 3
			o.Progress = time.Hour // only the final line
			o.Quiet = tc.quiet
			var buf bytes.Buffer
			if _, err := Run(context.Background(), o, &buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if tc.want == "" {
				if out != "" {
					t.Errorf("quiet run wrote %q", out)
				}
				return
			}
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "3 requests") || strings.Contains(out, "\r") {
				t.Errorf("progress = %q, want one plain line with %q and 3 requests", out, tc.want)
			}
		})
	}
}

func TestRunRefusesRemoteTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
	}{
		{"private address", "gemini://10.0.0.1/"},
		{"public name", "gemini://example.org/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(tc.url)
			o.Requests = 1
			_, err := Run(context.Background(), o, nil)
			if !errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "--allow-remote") {
				t.Errorf("Run = %v, want ErrNotLoopback with an override hint", err)
			}
		})
	}
}

func TestRunSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want error
	}{
		{"invalid options", func(o *Options) { o.Concurrency = 0 }, ErrInvalidOptions},
		{"missing urls file", func(o *Options) { o.URLsFile = filepath.Join(t.TempDir(), "nope") }, os.ErrNotExist},
		{"bad line in urls file", func(o *Options) {
			p := filepath.Join(t.TempDir(), "urls")
			if err := os.WriteFile(p, []byte("gemini://localhost/ a b\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			o.URLsFile = p
		}, ErrBadURLList},
		{"bad url in urls file", func(o *Options) {
			p := filepath.Join(t.TempDir(), "urls")
			if err := os.WriteFile(p, []byte("https://localhost/\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			o.URLsFile = p
		}, ErrBadURL},
		{"missing client cert", func(o *Options) { o.CertFile, o.KeyFile = "/nonexistent/c", "/nonexistent/k" }, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions("gemini://127.0.0.1:1/")
			tc.mod(&o)
			if _, err := Run(context.Background(), o, nil); !errors.Is(err, tc.want) {
				t.Errorf("Run = %v, want %v", err, tc.want)
			}
		})
	}
}

// newTestRunner prepares a runner for o without running it.
func newTestRunner(t *testing.T, o Options) *runner {
	t.Helper()
	targets, err := loadTargets(context.Background(), &o)
	if err != nil {
		t.Fatal(err)
	}
	if err := configureTLS(&o, targets); err != nil {
		t.Fatal(err)
	}
	r := &runner{o: o, now: time.Now, targets: targets}
	r.start = time.Now()
	r.measureFrom = r.start
	return r
}

// The open loop measures latency from the scheduled start: a slot that
// reaches a worker late carries its lateness into the latency.
func TestOpenLoopLatencyFromScheduledStart(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Rate = 1
	r := newTestRunner(t, o)
	w := newWorker(r, 0)
	slots := make(chan slot, 2)
	const late = 2 * time.Second
	slots <- slot{due: time.Now().Add(-late), measured: true}
	slots <- slot{due: time.Now().Add(-late), measured: false} // warm-up: not recorded
	close(slots)
	w.openLoop(context.Background(), slots)
	if w.responses != 1 || w.lat.TotalCount() != 1 {
		t.Fatalf("responses %d, latency count %d, want 1 and 1", w.responses, w.lat.TotalCount())
	}
	if got := w.lat.Max(); got < late.Microseconds() {
		t.Errorf("latency %dµs does not include the %v lateness", got, late)
	}
	if s.served.Load() != 2 {
		t.Errorf("served %d, want 2 (the warm-up request is made, not recorded)", s.served.Load())
	}
}

// Slots that reach a worker after the end of the run are counted as unsent
// and not run.
func TestOpenLoopUnsentAfterEnd(t *testing.T) {
	s := startServer(t, serverConfig(t), reply("20 text/plain\r\n"))
	o := testOptions(s.url("/"))
	o.Rate = 1
	r := newTestRunner(t, o)
	r.end = time.Now().Add(-time.Second)
	w := newWorker(r, 0)
	slots := make(chan slot, 3)
	for range 3 {
		slots <- slot{due: r.end.Add(-time.Second), measured: true}
	}
	close(slots)
	w.openLoop(context.Background(), slots)
	if w.unsent != 3 || w.responses != 0 || s.served.Load() != 0 {
		t.Errorf("unsent %d responses %d served %d, want 3, 0, 0", w.unsent, w.responses, s.served.Load())
	}
}
