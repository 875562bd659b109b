package gateway

import (
	"encoding/binary"
	"net"

	"github.com/pires/go-proxyproto"

	"github.com/chimalli/chimalli/tofu"
)

// PROXY protocol v2 header sent to tcp:// upstreams with ProxyProtocol set.
//
// Documentation (for docs/configuration.md):
//
// With `proxy_protocol: true` on a `tcp://` upstream, Chimalli opens every
// upstream connection with a PROXY protocol version 2 header
// (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt), then sends
// the Gemini request line. The header carries:
//
//   - source address and port: the client's, as Chimalli saw it (IPv4
//     clients appear as IPv4; when the upstream is reached over IPv6 both
//     addresses are sent as IPv6, the client's IPv4-mapped);
//   - destination address and port: the upstream address Chimalli
//     connected to;
//   - PP2_TYPE_AUTHORITY (0x02): the host name the client asked for (the
//     URL host, equal to its TLS server name);
//   - PP2_TYPE_SSL (0x20): client field PP2_CLIENT_SSL, plus
//     PP2_CLIENT_CERT_CONN and PP2_CLIENT_CERT_SESS when the client
//     presented a certificate; verify is 0 only when the route checked that
//     certificate's identity (allowed_fingerprints or a TOFU claim) and 1
//     otherwise (Gemini certificates are self-signed: no chain is ever
//     verified). A PP2_SUBTYPE_SSL_CN (0x22) sub-TLV carries the
//     certificate's subject common name when it has one: it is chosen by
//     the client, display it, never trust it;
//   - 0xE0 (application-specific range): the client certificate's
//     fingerprint as text, "sha256:<64 lower-case hex>", SHA-256 over the
//     DER certificate, the form Gemini servers use;
//   - 0xE1: the SHA-256 fingerprint of the certificate's public key,
//     "spki-sha256:<64 hex>", stable across renewals with the same key.
//
// 0xE0 and 0xE1 are absent when the client presented no certificate. A
// request whose client address is unknown is sent with the LOCAL command
// and no addresses.
const (
	// PP2TypeCertFingerprint is the PROXY v2 TLV type carrying the client
	// certificate's "sha256:<hex>" fingerprint.
	PP2TypeCertFingerprint proxyproto.PP2Type = 0xE0
	// PP2TypeSPKIFingerprint is the PROXY v2 TLV type carrying the client
	// certificate's "spki-sha256:<hex>" public-key fingerprint.
	PP2TypeSPKIFingerprint proxyproto.PP2Type = 0xE1
)

// PROXY v2 SSL TLV fields (section 2.2.5 of the specification).
const (
	pp2ClientSSL      = 0x01
	pp2ClientCertConn = 0x02
	pp2ClientCertSess = 0x04
	pp2SubtypeSSLCN   = 0x22

	maxCNLen = 1024 // longer common names are left out
)

// proxyHeader returns the PROXY v2 header for r forwarded to upstream.
func proxyHeader(r *Request, upstream net.Addr) ([]byte, error) {
	var h *proxyproto.Header
	dst, ok := upstream.(*net.TCPAddr)
	if r.RemoteAddr.IsValid() && ok {
		src := &net.TCPAddr{IP: r.RemoteAddr.Addr().Unmap().AsSlice(), Port: int(r.RemoteAddr.Port())}
		h = proxyproto.HeaderProxyFromAddrs(2, src, dst)
	} else {
		h = &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	}
	if err := h.SetTLVs(proxyTLVs(r)); err != nil {
		return nil, err
	}
	return h.Format()
}

// proxyTLVs returns the TLVs describing r's host and client certificate.
func proxyTLVs(r *Request) []proxyproto.TLV {
	tlvs := make([]proxyproto.TLV, 0, 4)
	if r.Host != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte(r.Host)})
	}
	ssl := []byte{pp2ClientSSL, 0, 0, 0, 0}
	verify := uint32(1)
	if r.ClientCert != nil {
		ssl[0] |= pp2ClientCertConn | pp2ClientCertSess
		if rt := r.Route; rt != nil && (len(rt.AllowedFingerprints) > 0 || rt.TOFUClaim) {
			verify = 0
		}
		if cn := r.ClientCert.Subject.CommonName; cn != "" && len(cn) <= maxCNLen {
			ssl = append(ssl, pp2SubtypeSSLCN)
			ssl = binary.BigEndian.AppendUint16(ssl, uint16(len(cn)))
			ssl = append(ssl, cn...)
		}
	}
	binary.BigEndian.PutUint32(ssl[1:5], verify)
	tlvs = append(tlvs, proxyproto.TLV{Type: proxyproto.PP2_TYPE_SSL, Value: ssl})
	if r.ClientCert != nil {
		id := r.ClientID
		if id.IsZero() {
			id = tofu.IdentityOf(r.ClientCert)
		}
		tlvs = append(tlvs,
			proxyproto.TLV{Type: PP2TypeCertFingerprint, Value: []byte(id.CertFingerprint().String())},
			proxyproto.TLV{Type: PP2TypeSPKIFingerprint, Value: []byte(id.SPKIFingerprint().String())},
		)
	}
	return tlvs
}
