package gateway

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
	"github.com/chimalli/chimalli/tofu/tofutest"
)

// A response that an upstream streams slowly reaches the client as it
// comes, not when the gateway's buffer fills or the upstream finishes.
func TestProxyStreamsSlowUpstream(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, tofutest.LoopbackCert(t, "localhost"), func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "20 text/plain\r\nfirst line\n")
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(c, "second line\n")
	})
	px := newTestProxy(t, ProxyConfig{Upstream: "gemini://" + up.addr, SNI: "localhost", StripPrefix: "/stream/", Pins: tofu.NewMemStore()})
	ts := startServer(t, func(c *Config) {
		c.Hosts[0].Routes = append([]Route{{Prefix: "/stream/", Handler: px}}, c.Hosts[0].Routes...)
	})
	tc, err := (client{sni: "localhost"}).dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	io.WriteString(tc, "gemini://localhost/stream/x\r\n")
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(tc)
	var got strings.Builder
	for !strings.Contains(got.String(), "first line\n") {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatalf("the first part did not arrive while the upstream held the rest (%v); got %q", err, got.String())
		}
		got.WriteByte(b)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second line\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
	if !strings.HasPrefix(got.String(), "20 text/plain\r\n") {
		t.Fatalf("header = %q", got.String())
	}
}
