//go:build linux && !386

package gateway

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestSockaddrAddrPort(t *testing.T) {
	v4 := func(a [4]byte, port uint16) *syscall.RawSockaddrAny {
		var sa syscall.RawSockaddrAny
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa))
		in.Family, in.Addr = syscall.AF_INET, a
		*(*[2]byte)(unsafe.Pointer(&in.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return &sa
	}
	v6 := func(a string, port uint16) *syscall.RawSockaddrAny {
		var sa syscall.RawSockaddrAny
		in := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&sa))
		in.Family, in.Addr = syscall.AF_INET6, netip.MustParseAddr(a).As16()
		in.Scope_id = 2 // a zone, which is dropped
		*(*[2]byte)(unsafe.Pointer(&in.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return &sa
	}
	unix := &syscall.RawSockaddrAny{Addr: syscall.RawSockaddr{Family: syscall.AF_UNIX}}
	tests := []struct {
		name string
		sa   *syscall.RawSockaddrAny
		want string
	}{
		{"ipv4", v4([4]byte{192, 0, 2, 1}, 1965), "192.0.2.1:1965"},
		{"ipv4 high port", v4([4]byte{127, 0, 0, 1}, 65535), "127.0.0.1:65535"},
		{"ipv6", v6("2001:db8::1", 443), "[2001:db8::1]:443"},
		{"ipv6 link-local, zone dropped", v6("fe80::1", 1), "[fe80::1]:1"},
		{"ipv4-mapped unmapped", v6("::ffff:198.51.100.7", 40000), "198.51.100.7:40000"},
		{"other family", unix, "invalid AddrPort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sockaddrAddrPort(tt.sa).String(); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// emfileChildEnv, when set, makes TestAcceptBackoffOnEMFILE run its body:
// it lowers RLIMIT_NOFILE, which would disturb other tests, so it runs in
// a child process (this test binary, re-executed).
const emfileChildEnv = "CHIMALLI_EMFILE_CHILD"

// TestAcceptBackoffOnEMFILE runs out of file descriptors while a client
// waits in the backlog: the accept loop must log the error, close nothing,
// back off, and serve the client once descriptors are free again.
func TestAcceptBackoffOnEMFILE(t *testing.T) {
	if kind := os.Getenv(emfileChildEnv); kind != "" {
		emfileChild(t, kind == "wrapped")
		return
	}
	for _, kind := range []string{"tcp", "wrapped"} {
		t.Run(kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptBackoffOnEMFILE$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), emfileChildEnv+"="+kind)
			out, err := cmd.CombinedOutput()
			if bytes.Contains(out, []byte("--- SKIP")) {
				t.Skipf("child skipped:\n%s", out)
			}
			if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
				t.Fatalf("child: %v\n%s", err, out)
			}
		})
	}
}

// logSignal is a log sink that reports when a line containing want is
// written.
type logSignal struct {
	want []byte
	once sync.Once
	seen chan struct{}
}

func (l *logSignal) Write(p []byte) (int, error) {
	if bytes.Contains(p, l.want) {
		l.once.Do(func() { close(l.seen) })
	}
	return len(p), nil
}

func emfileChild(t *testing.T, wrap bool) {
	var ln net.Listener = listenOrSkip(t, "127.0.0.1:0")
	if wrap {
		ln = &countingListener{Listener: ln}
	}
	sink := &logSignal{want: []byte("too many open files"), seen: make(chan struct{})}
	s := serveOn(t, ln, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(sink, nil))
		c.Limits.HandshakeTimeout = time.Minute
	})
	addr := ln.Addr().String()
	dialIdle(t, addr, "127.0.0.1") // held across the shortage
	waitFor(t, "the idle connection held", func() bool { return s.Stats().OpenConnections == 1 })

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	var fillers []int
	defer func() {
		for _, fd := range fillers {
			syscall.Close(fd)
		}
	}()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EMFILE {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fillers = append(fillers, fd)
	}
	// One descriptor for the client's socket; none left for accept.
	syscall.Close(fillers[len(fillers)-1])
	fillers = fillers[:len(fillers)-1]

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := client{sni: "localhost"}.do(addr, "gemini://localhost/\r\n")
		done <- result{r, err}
	}()
	select {
	case <-sink.seen:
	case res := <-done:
		t.Fatalf("client finished while descriptors were exhausted: %+v", res)
	case <-time.After(10 * time.Second):
		t.Fatal("no EMFILE logged by the accept loop")
	}
	for _, fd := range fillers {
		syscall.Close(fd)
	}
	fillers = nil
	res := <-done
	if res.err != nil || res.r.status != 20 {
		t.Fatalf("client after the shortage: %v %+v", res.err, res.r)
	}
	// Nothing was closed: the idle connection is still held.
	waitFor(t, "only the idle connection held", func() bool { return s.Stats().OpenConnections == 1 })
}
