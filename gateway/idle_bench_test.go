package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The idle-connection measurement runs its clients in a child process (this
// test binary, re-executed), so that the parent's memory statistics hold the
// server's connections only.
const idleClientEnv = "CHIMALLI_IDLE_CLIENT"

func init() {
	if spec := os.Getenv(idleClientEnv); spec != "" {
		os.Exit(idleClient(spec))
	}
}

// idleClient opens n TLS connections to addr, completes their handshakes,
// prints "ready" and holds them until stdin closes.
func idleClient(spec string) int {
	var addr string
	var n int
	if _, err := fmt.Sscanf(spec, "%s %d", &addr, &n); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	conns := make([]*tls.Conn, 0, n)
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	for i := 0; i < n; i++ {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			fmt.Printf("dial %d: %v\n", i, err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		c.Close()
	}
	return 0
}

func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkIdleConnections holds CHIMALLI_IDLE_CONNS (default 2000) idle TLS
// connections (handshake done, no request line yet: the slowloris shape) and
// reports the server's memory per connection, then checks that a normal
// client is still served. Run: go test -run '^$' -bench IdleConnections
// -benchtime 1x ./gateway/ (CHIMALLI_IDLE_CONNS=10000 for the figure).
func BenchmarkIdleConnections(b *testing.B) {
	n := 2000
	if s := os.Getenv("CHIMALLI_IDLE_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for b.Loop() {
		ts := startServer(b, func(c *Config) {
			c.Limits.MaxConns = n + 100
			c.Limits.MaxConnsPerIP = n + 100
			c.Limits.RequestTimeout = 10 * time.Minute
			c.Limits.HandshakeTimeout = time.Minute
		})
		before := heapAndStacks()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), idleClientEnv+"="+ts.addr+" "+strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			b.Fatalf("client: %q", line)
		}
		deadline := time.Now().Add(time.Minute)
		for ts.Stats().Handshakes < uint64(n) {
			if time.Now().After(deadline) {
				b.Fatalf("server saw %d handshakes of %d", ts.Stats().Handshakes, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		after := heapAndStacks()
		b.ReportMetric(float64(after-before)/float64(n), "B/idle-conn")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		// Normal clients are still served while the idle ones are held.
		if r, err := (client{sni: "localhost", local: "127.0.0.2"}).do(ts.addr, "gemini://localhost/\r\n"); err != nil || r.status != 20 {
			b.Fatalf("normal client while %d idle: %v %+v", n, err, r)
		}
		stdin.Close()
		cmd.Wait()
	}
}
