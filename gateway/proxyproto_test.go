package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/pires/go-proxyproto"
)

// parseProxyV2 reads a PROXY v2 header with go-proxyproto, the parser an
// upstream would use.
func parseProxyV2(br *bufio.Reader) proxySeen {
	h, err := proxyproto.Read(br)
	if err != nil {
		return proxySeen{err: fmt.Errorf("read proxy header: %w", err)}
	}
	if h.Version != 2 {
		return proxySeen{err: fmt.Errorf("proxy header version %d", h.Version)}
	}
	var s proxySeen
	if src, dst, ok := h.TCPAddrs(); ok {
		s.src, s.dst = src.AddrPort(), dst.AddrPort()
		s.src = netip.AddrPortFrom(s.src.Addr().Unmap(), s.src.Port())
		s.dst = netip.AddrPortFrom(s.dst.Addr().Unmap(), s.dst.Port())
	}
	tlvs, err := h.TLVs()
	if err != nil {
		return proxySeen{err: fmt.Errorf("proxy TLVs: %w", err)}
	}
	s.tlvs = make(map[byte][]byte)
	for _, tlv := range tlvs {
		s.tlvs[byte(tlv.Type)] = tlv.Value
	}
	return s
}

func TestProxyHeaderLocalWithoutClientAddress(t *testing.T) {
	r := &Request{Host: "h.example"}
	hdr, err := proxyHeader(r, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1965})
	if err != nil {
		t.Fatal(err)
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	if h.Command != proxyproto.LOCAL {
		t.Fatalf("command %v, want LOCAL", h.Command)
	}
	s := parseProxyV2(bufio.NewReader(bytes.NewReader(hdr)))
	if string(s.tlvs[0x02]) != "h.example" || len(s.tlvs[0x20]) != 5 {
		t.Fatalf("TLVs %q", s.tlvs)
	}
}

func TestProxyHeaderMixedFamilies(t *testing.T) {
	// An IPv4 client forwarded to an IPv6 upstream: both sent as IPv6.
	r := &Request{RemoteAddr: netip.MustParseAddrPort("192.0.2.9:1234")}
	hdr, err := proxyHeader(r, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 1965})
	if err != nil {
		t.Fatal(err)
	}
	s := parseProxyV2(bufio.NewReader(bytes.NewReader(hdr)))
	if s.err != nil || s.src != netip.MustParseAddrPort("192.0.2.9:1234") ||
		s.dst != netip.MustParseAddrPort("[2001:db8::2]:1965") {
		t.Fatalf("got %+v", s)
	}
}
