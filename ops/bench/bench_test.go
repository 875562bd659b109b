package bench

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRequest measures one full request (dial, handshake, request,
// response, close) by one worker against the in-process test server, so the
// figures (wall time and process CPU per request) include the server's
// share.
func BenchmarkRequest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		resume bool
		kex    string
	}{{"full-handshake", false, KEXDefault}, {"full-handshake-x25519", false, KEXX25519}, {"resume", true, KEXDefault}} {
		b.Run(tc.name, func(b *testing.B) {
			s := startServer(b, serverConfig(b), reply("20 text/gemini\r\n# hello\n"))
			o := testOptions(s.url("/"))
			o.Resume = tc.resume
			o.KeyExchange = tc.kex
			targets, err := loadTargets(context.Background(), &o)
			if err != nil {
				b.Fatal(err)
			}
			if err := configureTLS(&o, targets); err != nil {
				b.Fatal(err)
			}
			tg := targets[0]
			c := newConn(time.Now, false)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				if o := c.do(context.Background(), tg, time.Now(), 5*time.Second); !o.ok {
					b.Fatalf("request failed: %v", o.kind)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU returns the user and system CPU time the process has used, a
// steadier measure than wall time on a shared machine.
func processCPU(b testing.TB) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunClosedLoop runs b.N requests through Run with 8 workers and
// reports the request rate reached.
func BenchmarkRunClosedLoop(b *testing.B) {
	s := startServer(b, serverConfig(b), reply("20 text/gemini\r\n# hello\n"))
	o := testOptions(s.url("/"))
	o.Concurrency = 8
	o.Requests = int64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := Run(context.Background(), o, nil)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Errors != 0 {
		b.Fatalf("errors: %v", rep.ErrorsByKind)
	}
	b.ReportMetric(rep.RequestsPerSecond, "req/s")
}

// TestCeiling measures the request rate the generator reaches against the
// in-process test server with 32 connections for 3 s. It only runs when
// CHIMALLI_BENCH_CEILING=1, and asserts nothing about speed;
// CHIMALLI_BENCH_RESUME=1 and CHIMALLI_BENCH_KEX=x25519 vary it.
func TestCeiling(t *testing.T) {
	if os.Getenv("CHIMALLI_BENCH_CEILING") != "1" {
		t.Skip("set CHIMALLI_BENCH_CEILING=1 to measure")
	}
	s := startServer(t, serverConfig(t), reply("20 text/gemini\r\n# hello\n"))
	o := DefaultOptions()
	o.URLs = []string{s.url("/")}
	o.Concurrency = 32
	o.Duration = 3 * time.Second
	o.Resume = os.Getenv("CHIMALLI_BENCH_RESUME") == "1"
	if k := os.Getenv("CHIMALLI_BENCH_KEX"); k != "" {
		o.KeyExchange = k
	}
	cpu0 := processCPU(t)
	rep, err := Run(context.Background(), o, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cpu := processCPU(t) - cpu0
	t.Logf("process CPU (generator + test server): %v, %.0f µs a request",
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(max(rep.Requests, 1)))
	var sb strings.Builder
	if err := rep.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + sb.String())
}
