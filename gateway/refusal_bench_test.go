package gateway

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The refusal measurement hammers a server with connections from a denied
// address. The clients run in a child process (this test binary,
// re-executed) so the parent's CPU time is the server's alone.
const refusalClientEnv = "CHIMALLI_REFUSAL_CLIENT"

func init() {
	if spec := os.Getenv(refusalClientEnv); spec != "" {
		os.Exit(refusalClient(spec))
	}
}

// refusalClient connects to addr n times from workers goroutines, each
// connection waiting for the server to reset it, and prints the count.
func refusalClient(spec string) int {
	var addr string
	var n, workers int
	if _, err := fmt.Sscanf(spec, "%s %d %d", &addr, &n, &workers); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	var wg sync.WaitGroup
	per := n / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 1)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)}}
			for i := 0; i < per; i++ {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				c.Read(b) // returns at the server's reset
				c.Close()
			}
		}()
	}
	wg.Wait()
	fmt.Println(per * workers)
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAcceptRefusals measures the accept-time refusal path (a denied
// address: no goroutine, no handshake) with the server on one core
// (GOMAXPROCS=1). It reports refusals per second of wall time and the
// server's CPU time per refusal; 1e6 / cpu-µs/refusal is what one core
// sustains. Run: go test -run '^$' -bench AcceptRefusals -benchtime 1x ./gateway/
func BenchmarkAcceptRefusals(b *testing.B) {
	n := 50000
	if s := os.Getenv("CHIMALLI_REFUSALS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	deny := []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}
	for b.Loop() {
		ts := startServer(b, func(c *Config) { c.Layers.Access = NewAccessList(nil, deny, true) })
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), refusalClientEnv+"="+ts.addr+" "+strconv.Itoa(n)+" 16", "GOMAXPROCS=1")
		out, _ := cmd.StdoutPipe()
		cpu0, t0 := cpuTime(), time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		cmd.Wait()
		wall, cpu := time.Since(t0), cpuTime()-cpu0
		refused := ts.Stats().RefusedAtAccept["access_denied"]
		if refused == 0 {
			b.Fatalf("no refusals; client said %q", line)
		}
		if hs := ts.Stats().Handshakes + ts.Stats().HandshakeFailed; hs != 0 {
			b.Fatalf("%d handshakes attempted for a denied address", hs)
		}
		b.ReportMetric(float64(refused)/wall.Seconds(), "refusals/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(refused), "cpu-µs/refusal")
	}
}
