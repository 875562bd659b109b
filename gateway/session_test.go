package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// offsetClock is the real time moved forward by what the test advanced it:
// certificates made with the real time stay valid, lifetimes pass at once.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

var tlsVersions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// sessionClient is a Gemini client that keeps TLS sessions in cache and
// presents cert when it is set.
type sessionClient struct {
	version uint16
	sni     string
	cache   tls.ClientSessionCache
	cert    *tls.Certificate
}

// do sends line and returns the response and whether the handshake resumed
// a session.
func (c *sessionClient) do(t *testing.T, addr, line string) (response, bool) {
	t.Helper()
	cfg := &tls.Config{
		InsecureSkipVerify: true,
		ServerName:         c.sni,
		MinVersion:         c.version,
		MaxVersion:         c.version,
		ClientSessionCache: c.cache,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c.cert == nil {
				return &tls.Certificate{}, nil
			}
			return c.cert, nil
		},
	}
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := io.WriteString(tc, line); err != nil {
		t.Fatal(err)
	}
	// Reading to the end also takes in a TLS 1.3 ticket.
	r, err := readResponse(tc)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return r, tc.ConnectionState().DidResume
}

func expect(t *testing.T, what string, r response, resumed bool, wantStatus int, wantResumed bool) {
	t.Helper()
	if r.status != wantStatus || resumed != wantResumed {
		t.Fatalf("%s: status %d resumed %v, want %d resumed %v", what, r.status, resumed, wantStatus, wantResumed)
	}
}

// TestCertSessionLifetime: a session in which the client presented a
// certificate resumes as that certificate, without one, for CertLifetime
// after its full handshake and no longer, re-issued tickets included.
func TestCertSessionLifetime(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			clock := &offsetClock{}
			ts := startServer(t, func(c *Config) { c.Layers.Now = clock.now })
			alice, _, _ := genPair(t, "alice", time.Now(), 30)
			c := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4), cert: &alice}
			r, resumed := c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "full handshake with a certificate", r, resumed, 20, false)

			c.cert = nil
			clock.advance(6 * time.Minute)
			r, resumed = c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "resumed within the lifetime", r, resumed, 20, true)

			// 11 minutes after the full handshake, 5 after the ticket the
			// resumption got.
			clock.advance(5 * time.Minute)
			r, resumed = c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "past the certificate lifetime, without a certificate", r, resumed, 60, false)
			if st := ts.Stats(); st.Resumed != 1 {
				t.Fatalf("server counted %d resumptions, want 1", st.Resumed)
			}
		})
	}
}

// TestExpiredCertificateInTicket: a session whose certificate has expired is
// not resumed; the full handshake that follows sees the certificate and
// answers 62.
func TestExpiredCertificateInTicket(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			clock := &offsetClock{}
			ts := startServer(t, func(c *Config) {
				c.Layers.Now = clock.now
				c.Sessions.CertLifetime = MaxSessionLifetime
			})
			alice, _, _ := genPair(t, "alice", time.Now(), 1)
			c := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4), cert: &alice}
			r, resumed := c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "full handshake", r, resumed, 20, false)
			clock.advance(2 * 24 * time.Hour)
			r, resumed = c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "expired certificate", r, resumed, 62, false)
		})
	}
}

// TestAnonymousSessionOnCertHost: on a host with certificate routes, a
// session without a certificate is not resumed, so the client's next
// connection can present one and be served.
func TestAnonymousSessionOnCertHost(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			ts := startServer(t)
			alice, _, _ := genPair(t, "alice", time.Now(), 30)
			c := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4)}
			r, resumed := c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "anonymous", r, resumed, 60, false)
			c.cert = &alice
			r, resumed = c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "retry with a certificate", r, resumed, 20, false)
			c.cert = nil
			r, resumed = c.do(t, ts.addr, "gemini://localhost/cert/\r\n")
			expect(t, "certificate session resumed", r, resumed, 20, true)
		})
	}
}

// sharedSessionCache offers the last session it was given for any server
// name, as a client that mixes up its cache would.
type sharedSessionCache struct {
	mu   sync.Mutex
	last *tls.ClientSessionState
}

func (c *sharedSessionCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.last != nil
}

func (c *sharedSessionCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil {
		c.last = cs
	}
}

// TestSessionBoundToServerName: a ticket issued for one host is not resumed
// on another, even on hosts without certificate routes where anonymous
// sessions resume; and anonymous sessions expire after Lifetime.
func TestSessionBoundToServerName(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			clock := &offsetClock{}
			ts := startServer(t, func(c *Config) {
				c.Layers.Now = clock.now
				h := c.Hosts[0]
				c.Hosts = []Host{
					{Name: "a.example", CertFile: h.CertFile, KeyFile: h.KeyFile, Routes: []Route{{Prefix: "/", Handler: h.Routes[len(h.Routes)-1].Handler}}},
					{Name: "b.example", CertFile: h.CertFile, KeyFile: h.KeyFile, Routes: []Route{{Prefix: "/", Handler: h.Routes[len(h.Routes)-1].Handler}}},
				}
			})
			cache := &sharedSessionCache{}
			a := &sessionClient{version: tv.v, sni: "a.example", cache: cache}
			b := &sessionClient{version: tv.v, sni: "b.example", cache: cache}
			r, resumed := a.do(t, ts.addr, "gemini://a.example/\r\n")
			expect(t, "host A", r, resumed, 20, false)
			r, resumed = a.do(t, ts.addr, "gemini://a.example/\r\n")
			expect(t, "host A again", r, resumed, 20, true)
			r, resumed = b.do(t, ts.addr, "gemini://b.example/\r\n")
			expect(t, "host B with A's ticket", r, resumed, 20, false)
			r, resumed = b.do(t, ts.addr, "gemini://b.example/\r\n")
			expect(t, "host B with its own ticket", r, resumed, 20, true)
			clock.advance(DefaultSessionLifetime + time.Second)
			r, resumed = b.do(t, ts.addr, "gemini://b.example/\r\n")
			expect(t, "host B past the lifetime", r, resumed, 20, false)
		})
	}
}

// TestSessionTicketsDisabled: with tickets off nothing resumes.
func TestSessionTicketsDisabled(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) {
				c.Sessions.Disabled = true
				c.Hosts[0].Routes = c.Hosts[0].Routes[len(c.Hosts[0].Routes)-1:]
			})
			c := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4)}
			for i := range 2 {
				r, resumed := c.do(t, ts.addr, "gemini://localhost/\r\n")
				expect(t, "request "+string(rune('1'+i)), r, resumed, 20, false)
			}
		})
	}
}

// TestTicketKeyRotation: a ticket sealed shortly before its key stopped
// sealing still resumes after the rotation, within its lifetime.
func TestTicketKeyRotation(t *testing.T) {
	for _, tv := range tlsVersions {
		t.Run(tv.name, func(t *testing.T) {
			clock := &offsetClock{}
			ts := startServer(t, func(c *Config) {
				c.Layers.Now = clock.now
				c.Hosts[0].Routes = c.Hosts[0].Routes[len(c.Hosts[0].Routes)-1:]
			})
			first := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4)}
			r, resumed := first.do(t, ts.addr, "gemini://localhost/\r\n") // the first key is made
			expect(t, "first client", r, resumed, 20, false)
			clock.advance(50 * time.Minute)
			late := &sessionClient{version: tv.v, sni: "localhost", cache: tls.NewLRUClientSessionCache(4)}
			r, resumed = late.do(t, ts.addr, "gemini://localhost/\r\n") // sealed with the first key
			expect(t, "late client", r, resumed, 20, false)
			clock.advance(20 * time.Minute) // a new key seals from now on
			r, resumed = first.do(t, ts.addr, "gemini://localhost/\r\n")
			expect(t, "first client past its lifetime", r, resumed, 20, false)
			r, resumed = late.do(t, ts.addr, "gemini://localhost/\r\n")
			expect(t, "late client after the rotation", r, resumed, 20, true)
		})
	}
}

func TestSessionLifetimeValidated(t *testing.T) {
	dir := t.TempDir()
	_, certPEM, keyPEM := genPair(t, "localhost", time.Now(), 1)
	certFile, keyFile := writePair(t, dir, "localhost", certPEM, keyPEM)
	for _, sp := range []SessionPolicy{{Lifetime: -time.Second}, {CertLifetime: MaxSessionLifetime + time.Second}} {
		_, err := New(Config{Hosts: []Host{{Name: "localhost", CertFile: certFile, KeyFile: keyFile}}, Sessions: sp})
		if err == nil || !strings.Contains(err.Error(), "sessions: lifetime") {
			t.Fatalf("New with %+v: %v, want a lifetime error", sp, err)
		}
	}
}
